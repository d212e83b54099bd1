"""PyTorch batch evaluation for `benchmark.py --mode test`, in two styles.

`--style original` is the original's loop as its users run it: a transformers PyTorch model
from a Hugging Face folder, the split in dataset order, each batch padded to its longest example
(`padding=True`), `no_grad`, a teacher-forced pass for perplexity, `generate`, decoding.

`--style competent` is the same work as a competent PyTorch user writes it: `inference_mode`,
batches of length-sorted rows (by context, then target, as test.py sorts), each padded to its
longest; an encoder-decoder's contexts encoded once for both the perplexity pass and
`generate` (`encoder_outputs=`); a decoder-only model's hidden states sliced to the target
positions before the LM head. Perplexity is the original's formula either way (the mean of the
dataset-order batches' mean token losses), from per-example token losses.

Both end with the same text metrics (nltk BLEU/NIST, dist-n) and bag-of-words cosines in torch.
Run as its own process so that its imports and loading count as they do for a user:

  python -m benchmarks.original_loop --hf_dir DIR --dataset_dir D --max_examples N \
      --batch_size 32 --max_new_tokens 32 --threads 2 --style competent --out result.json

No JAX is imported here: the reference pays only for what the original imports.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time


def _pad(rows, pad_id, left):
  import torch  # pylint: disable=import-outside-toplevel

  length = max(len(r) for r in rows)
  ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
  mask = torch.zeros((len(rows), length), dtype=torch.long)
  for i, r in enumerate(rows):
    cols = slice(length - len(r), length) if left else slice(0, len(r))
    ids[i, cols] = torch.tensor(r, dtype=torch.long)
    mask[i, cols] = 1
  return ids, mask


def _batch_loss(model, encoder_decoder, c_ids, c_mask, t_ids, t_mask):
  """Mean token loss of a batch, as the original's test step (targets' first token is the
  decoder start; pads ignored)."""
  import torch  # pylint: disable=import-outside-toplevel

  if encoder_decoder:
    labels = t_ids[:, 1:].masked_fill(t_mask[:, 1:] == 0, -100)
    return model(input_ids=c_ids, attention_mask=c_mask, decoder_input_ids=t_ids[:, :-1],
                 decoder_attention_mask=t_mask[:, :-1], labels=labels).loss
  ids = torch.cat([c_ids, t_ids], 1)
  mask = torch.cat([c_mask, t_mask], 1)
  positions = (mask.cumsum(1) - 1).clamp(min=0)
  labels = torch.cat([torch.full_like(c_ids, -100), t_ids.masked_fill(t_mask == 0, -100)], 1)
  return model(input_ids=ids, attention_mask=mask, position_ids=positions, labels=labels).loss


def _example_losses(model, encoder_decoder, c_ids, c_mask, t_ids, t_mask, encoder_outputs=None):
  """(summed token loss, token count) per example, the LM head only where a target is
  predicted (decoder-only: the hidden states sliced first)."""
  import torch  # pylint: disable=import-outside-toplevel

  if encoder_decoder:
    logits = model(encoder_outputs=encoder_outputs, attention_mask=c_mask,
                   decoder_input_ids=t_ids[:, :-1],
                   decoder_attention_mask=t_mask[:, :-1]).logits
    labels, mask = t_ids[:, 1:], t_mask[:, 1:]
  else:
    ids, mask_all = torch.cat([c_ids, t_ids], 1), torch.cat([c_mask, t_mask], 1)
    positions = (mask_all.cumsum(1) - 1).clamp(min=0)
    hidden = model.transformer(input_ids=ids, attention_mask=mask_all,
                               position_ids=positions).last_hidden_state
    c = c_ids.shape[1]
    logits = model.lm_head(hidden[:, c - 1:-1])  # the positions that predict a target
    labels, mask = t_ids, t_mask
  nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), labels,
                                          reduction="none")
  return (nll * mask).sum(1), mask.sum(1)


def _competent(model, fmt, contexts, targets, batch_size, max_new_tokens):
  """(per-example generated ids in dataset order, per-example (loss sum, token count))."""
  import torch  # pylint: disable=import-outside-toplevel

  n = len(contexts)
  order = sorted(range(n), key=lambda i: (-len(contexts[i].ids), -len(targets[i].ids)))
  encoder_decoder = fmt.is_encoder_decoder
  gen_ids, sums, counts = [None] * n, [0.0] * n, [0] * n
  with torch.inference_mode():
    for s in range(0, n, batch_size):
      rows = order[s:s + batch_size]
      c_ids, c_mask = _pad([contexts[i].ids for i in rows], fmt.pad_id, left=not encoder_decoder)
      t_ids, t_mask = _pad([targets[i].ids for i in rows], fmt.pad_id, left=False)
      encoded = (model.get_encoder()(input_ids=c_ids, attention_mask=c_mask)
                 if encoder_decoder else None)
      loss_sum, count = _example_losses(model, encoder_decoder, c_ids, c_mask, t_ids, t_mask,
                                        encoded)
      if encoder_decoder:
        gen = model.generate(encoder_outputs=encoded, attention_mask=c_mask,
                             max_new_tokens=max_new_tokens, num_beams=1, do_sample=False,
                             pad_token_id=fmt.pad_id)[:, 1:]
      else:
        gen = model.generate(input_ids=c_ids, attention_mask=c_mask,
                             max_new_tokens=max_new_tokens, num_beams=1, do_sample=False,
                             pad_token_id=fmt.pad_id)[:, c_ids.shape[1]:]
      for j, i in enumerate(rows):
        gen_ids[i] = gen[j].tolist()
        sums[i], counts[i] = float(loss_sum[j]), int(count[j])
  return gen_ids, sums, counts


def _bow(embeddings, outputs, targets):
  """avg / extrema / greedy BOW cosines per example (the original's per-example loop)."""
  import torch  # pylint: disable=import-outside-toplevel

  keys = ("avg_bow", "extrema_bow", "greedy_bow", "greedy_bow_symmetric")
  out = {k: [] for k in keys}
  cos = torch.nn.functional.cosine_similarity
  for o_ids, t_ids in zip(outputs, targets):
    if not o_ids or not t_ids:
      for k in keys:
        out[k].append(0.0)
      continue
    o, t = embeddings[o_ids], embeddings[t_ids]
    out["avg_bow"].append(float(cos(o.mean(0), t.mean(0), dim=0)))
    ext = lambda x: torch.where(x.max(0).values.abs() >= x.min(0).values.abs(),
                                x.max(0).values, x.min(0).values)
    out["extrema_bow"].append(float(cos(ext(o), ext(t), dim=0)))
    sim = torch.nn.functional.normalize(o, dim=1) @ torch.nn.functional.normalize(t, dim=1).T
    a, b = float(sim.max(0).values.mean()), float(sim.max(1).values.mean())
    out["greedy_bow"].append(a + b / 2)
    out["greedy_bow_symmetric"].append((a + b) / 2)
  return {k: sum(v) / len(v) for k, v in out.items()}


def run(hf_dir: str, dataset_dir: str, max_examples: int, batch_size: int,
        max_new_tokens: int, family: str, threads: int, style: str = "original") -> dict:
  start = time.perf_counter()
  import torch  # pylint: disable=import-outside-toplevel
  import transformers  # pylint: disable=import-outside-toplevel

  from empathy_jax.data.dialogue_dataset import load_dialogue_split  # pylint: disable=import-outside-toplevel
  from empathy_jax.evaluation.text_metrics import bleu_nist, distinct  # pylint: disable=import-outside-toplevel
  from empathy_jax.families import make_format  # pylint: disable=import-outside-toplevel
  from empathy_jax.tokenization.loading import load_hf_tokenizer  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(threads)
  tok = load_hf_tokenizer(hf_dir, family)
  fmt = make_format(family, tok)
  encoder_decoder = fmt.is_encoder_decoder
  cls = (transformers.AutoModelForSeq2SeqLM if encoder_decoder
         else transformers.AutoModelForCausalLM)
  model = cls.from_pretrained(hf_dir).eval()
  split = load_dialogue_split(os.path.join(dataset_dir, "test"), 1.0)
  n = min(max_examples, len(split))
  contexts = fmt.encode_contexts(split.contexts[:n], split.instructions[:n], split.knowledge[:n])
  targets = fmt.encode_targets(split.targets[:n])
  contexts = fmt.fit_contexts(contexts, targets)
  losses, outputs, output_ids, generated = [], [], [], []
  if style == "competent":
    generated, sums, counts = _competent(model, fmt, contexts, targets, batch_size,
                                         max_new_tokens)
    for s in range(0, n, batch_size):  # the original's formula over dataset-order batches
      losses.append(sum(sums[s:s + batch_size]) / sum(counts[s:s + batch_size]))
  else:
    with torch.no_grad():
      for s in range(0, n, batch_size):
        c_ids, c_mask = _pad([c.ids for c in contexts[s:s + batch_size]], fmt.pad_id,
                             left=not encoder_decoder)
        t_ids, t_mask = _pad([t.ids for t in targets[s:s + batch_size]], fmt.pad_id,
                             left=False)
        losses.append(float(_batch_loss(model, encoder_decoder, c_ids, c_mask, t_ids, t_mask)))
        gen = model.generate(input_ids=c_ids, attention_mask=c_mask,
                             max_new_tokens=max_new_tokens, num_beams=1, do_sample=False,
                             pad_token_id=fmt.pad_id)
        gen = gen[:, 1:] if encoder_decoder else gen[:, c_ids.shape[1]:]
        generated += gen.tolist()
  for row in generated:
    # Through the first EOS, as test.py keeps it; pads after it dropped.
    if fmt.eos_id in row:
      row = row[:row.index(fmt.eos_id) + 1]
    output_ids.append([i for i in row if i != fmt.pad_id])
    outputs.append(fmt.decode(row).strip())
  target_ids = [[i for i in t.ids if i != fmt.pad_id] for t in targets]
  metrics = {**bleu_nist(split.targets[:n], outputs), **distinct(outputs)}
  metrics.update(_bow(model.get_input_embeddings().weight.detach().float(), output_ids,
                      target_ids))
  metrics["ppl"] = math.exp(sum(losses) / len(losses))
  return {"seconds_in_process": time.perf_counter() - start, "metrics": metrics,
          "outputs": outputs, "threads": torch.get_num_threads()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--hf_dir", required=True)
  parser.add_argument("--dataset_dir", required=True)
  parser.add_argument("--family", required=True)
  parser.add_argument("--max_examples", type=int, default=1024)
  parser.add_argument("--batch_size", type=int, default=32)
  parser.add_argument("--max_new_tokens", type=int, default=32)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--style", choices=("original", "competent"), default="original")
  parser.add_argument("--out", required=True)
  a = parser.parse_args()
  result = run(a.hf_dir, a.dataset_dir, a.max_examples, a.batch_size, a.max_new_tokens,
               a.family, a.threads, a.style)
  with open(a.out, "w", encoding="utf-8") as f:
    json.dump(result, f)


if __name__ == "__main__":
  main()
