"""Classifier-suite throughput (examples/s): emotion, intent and EPITOME IP/EX/ER on output and
target, in jitted batches, versus PyTorch on the same random weights (RoBERTa-base sized by
default) twice: batched as a competent user batches (`inference_mode`, every batch padded to
its longest; the JSON line's `torch` and `ratio`), and the original's one-example-at-a-time
loop (each example padded to max_seq_length, as the original pads). Every side's labels are
asserted equal to ours; equal repeats, interleaved, median and range; FLOP fractions counting
real tokens and the padded shapes."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import jax
import numpy as np

from benchmarks import common as CB
from benchmarks.common import (BenchConfig, describe, interleaved,
                               pin_threads, report, spread, torch_available)
from empathy_jax.data.dialogue_dataset import load_dialogue_split
from empathy_jax.evaluation import classifiers as C
from empathy_jax.evaluation import encoders as E
from benchmarks import random_classifiers as R

MAX_SEQ_LENGTH = 64


def _examples(cfg: BenchConfig, n: int):
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "test"), 1.0)
  rng = np.random.default_rng(0)
  outputs = [split.targets[i] for i in rng.permutation(len(split))[:n]]
  return [c[-1] for c in split.contexts[:n]], split.targets[:n], outputs


def _flops(fn, *args) -> float:
  return CB.xla_flops(jax.jit(fn).lower(*args).compile())


def run(cfg: BenchConfig, size: str = "base") -> dict:
  pin_threads()
  n = cfg.batch_size
  seekers, targets, outputs = _examples(cfg, n)
  tmp = tempfile.mkdtemp(prefix="empathy_jax_clf_")
  emo_t, emo_tok = R.save_classifier(os.path.join(tmp, "emo"), "roberta", 32, [],
                                     MAX_SEQ_LENGTH, size=size)
  int_t, int_tok = R.save_classifier(os.path.join(tmp, "intent"), "roberta", 9, [],
                                     MAX_SEQ_LENGTH, seed=1, size=size)
  epi_t = R.save_epitome(os.path.join(tmp, "epitome"), size=size)
  emo = C.load_text_classifier(os.path.join(tmp, "emo"), C.EMOTION_LABELS, "emotion")
  intent = C.load_text_classifier(os.path.join(tmp, "intent"), C.INTENT_LABELS, "empintent")
  epitome = C.load_epitome(os.path.join(tmp, "epitome"))
  shutil.rmtree(tmp, ignore_errors=True)  # everything is loaded; base-size weights are GBs

  def ours():
    labels = [clf.predict(texts, n) for clf in (emo, intent) for texts in (outputs, targets)]
    for mech in C.EPITOME_MECHANISMS:
      labels += [epitome.levels(mech, seekers, texts, n) for texts in (outputs, targets)]
    return [np.asarray(x) for x in labels]

  sides = {"jax batched": ours}
  if cfg.torch and torch_available():
    sides.update(_torch_sides(emo_t, emo_tok, int_t, int_tok, epi_t, seekers, outputs,
                              targets))
    want = ours()
    for name, side in list(sides.items())[1:]:
      for i, (a, b) in enumerate(zip(want, side())):
        if not np.array_equal(a, np.asarray(b)):
          raise AssertionError(f"{name}: labels of score {i} differ from ours in "
                               f"{int((a != np.asarray(b)).sum())} of {len(a)} examples")
    print(f"same labels from every side on all {n} examples x 10 scores: yes")
  ffn = next(v for k, v in emo.params.items() if k.endswith("intermediate.dense.weight"))
  shape = (n * MAX_SEQ_LENGTH, *ffn.shape)  # a feed-forward layer: [rows, d] @ [d, d_ff]
  times = interleaved({**sides, **CB.matmul_probes(shape)}, cfg.repeats)
  tok = epitome.tokenizer
  real = 2 * sum(min(len(emo.tokenizer.tokenize(t)) + 2, MAX_SEQ_LENGTH)
                 for t in outputs + targets)  # 2 classifiers
  real += 3 * sum(len(tok(t, max_length=64, truncation=True)["input_ids"])
                  for t in seekers * 2 + outputs + targets)  # per mechanism
  padded_positions = 4 * n * MAX_SEQ_LENGTH + 3 * 4 * n * MAX_SEQ_LENGTH
  ids = np.ones((n, MAX_SEQ_LENGTH), np.int32)
  flops = 4 * _flops(lambda p, i, m: E.classify(p, emo.cfg, i, m), emo.params, ids, ids)
  flops += 6 * _flops(lambda p, a, b, c, d: E.epitome(p, epitome.cfg, a, b, c, d),
                      epitome.params["IP"], ids, ids, ids, ids)
  print(f"{size} classifiers, {n} examples (each scored 10 times: 2 classifiers + 3 EPITOME "
        f"mechanisms, on output and target); {real} real of {padded_positions} padded token "
        f"positions")
  # The work counted on real tokens only: our batches are cut to their longest example (a
  # multiple of 16 columns), so the 64-column FLOP count would flatter the achieved rate.
  roof = CB.roofline(times, flops * real / padded_positions, shape,
                     spread(times["jax batched"])["median"])
  peak = roof["matmul_1024_gflops"] * 1e9  # measured beside the repeats
  rates = {}
  for name, seconds in times.items():
    median = spread(seconds)["median"]
    rates[name] = n / median
    line = f"{name:>20}: {describe(seconds)}, {n / median:.2f} examples/s"
    if name == "jax batched":
      fraction = {"padded": flops / median / peak,
                  "real": flops * real / padded_positions / median / peak}
      line += (f"; {fraction['real']:.1%} of XLA's matmul rate counting real tokens' FLOPs, "
               f"{fraction['padded']:.1%} counting the padded shapes'")
    print(line)
  one = rates.get("torch one at a time")
  return report(dataclasses.replace(cfg, model="classifier-suite"), "examples/s",
                rates["jax batched"], rates.get("torch batched"), {
                    "torch_one_at_a_time": None if one is None else round(one, 2),
                    "ratio_to_one_at_a_time": None if not one else round(
                        rates["jax batched"] / one, 3),
                    "repeats": cfg.repeats, "size": size,
                    "flop_fraction_real": round(fraction["real"], 3),
                    "flop_fraction_padded": round(fraction["padded"], 3), **roof})


def _torch_sides(emo_t, emo_tok, int_t, int_tok, epi_t, seekers, outputs, targets):
  """PyTorch one at a time (the original's loop) and batched; each returns the labels in the
  order `ours` returns them."""
  import torch  # pylint: disable=import-outside-toplevel

  def classify(model, tok, texts, padding):
    enc = tok(texts, max_length=MAX_SEQ_LENGTH, truncation=True, padding=padding,
              return_tensors="pt")
    return model(**enc).logits.argmax(-1).numpy()

  def epitome_levels(model, seeker_texts, texts):
    """EPITOME batched, each side padded to its longest (the seeker's padding masked)."""
    s = emo_tok(seeker_texts, max_length=64, truncation=True, padding=True, return_tensors="pt")
    r = emo_tok(texts, max_length=64, truncation=True, padding=True, return_tensors="pt")
    return model(s["input_ids"], s["attention_mask"], r["input_ids"],
                 r["attention_mask"]).argmax(-1).numpy()

  def one_at_a_time():
    labels = []
    with torch.no_grad():
      for model, tok in ((emo_t, emo_tok), (int_t, int_tok)):
        for texts in (outputs, targets):
          labels.append(np.concatenate([classify(model, tok, [t], "max_length")
                                        for t in texts]))
      for model in epi_t.values():
        for texts in (outputs, targets):
          levels = []
          for seeker, text in zip(seekers, texts):
            s = emo_tok(seeker, max_length=64, truncation=True, return_tensors="pt")
            r = emo_tok(text, max_length=64, truncation=True, return_tensors="pt")
            levels.append(int(model(s["input_ids"], s["attention_mask"], r["input_ids"],
                                    r["attention_mask"]).argmax(-1)))
          labels.append(np.asarray(levels))
    return labels

  def batched():
    labels = []
    with torch.inference_mode():
      for model, tok in ((emo_t, emo_tok), (int_t, int_tok)):
        labels += [classify(model, tok, texts, True) for texts in (outputs, targets)]
      for model in epi_t.values():
        labels += [epitome_levels(model, seekers, texts) for texts in (outputs, targets)]
    return labels

  return {"torch one at a time": one_at_a_time, "torch batched": batched}
