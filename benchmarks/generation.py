"""Generated tokens per second: our jitted generation vs transformers' PyTorch `generate`.

Two workloads: the first `batch_size` test rows in dataset order (one batch), and `test.py`'s
realistic batches (the test split in its length-sorted order, several batches from the longest
to the shortest). Both sides decode exactly `max_new_tokens` per row (EOS off on both: no early
stop and no EOS-masking pass), get the same rows, PyTorch padded to each batch's longest
example as its users pad; equal repeats, interleaved, median and range. Before timing, the two
sides' greedy / beam tokens are asserted identical on every benchmark batch. On test.py's
batches ours is also timed as test.py runs them: IN_FLIGHT batches at a time, each from its own
thread (PyTorch's side stays as its users run `generate`, one batch after another). Last,
one of those batches is profiled: our decoding step kernel by kernel (`kernel_profile`), and
the LM head's matmul, the work both sides share, timed alone in each framework.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common as C
from benchmarks import kernel_profile
from benchmarks.common import (BenchConfig, describe, interleaved, matmul_rates,
                               pin_threads, realistic_batches, report, spread,
                               test_batch, to_torch, torch_available, torch_twin,
                               trim_padding)
from empathy_jax.evaluation.testing import IN_FLIGHT, in_flight
from empathy_jax.generation.config import resolve
from empathy_jax.generation import search
from empathy_jax.generation.search import generate_ids
from empathy_jax.models.packing import encoder_plan


def gen_config(loaded, cfg: BenchConfig):
  """Exactly max_new_tokens per row, nothing else constraining either side."""
  gen = resolve({"max_new_tokens": cfg.max_new_tokens, "beam_width": cfg.beam_width,
                 "length_alpha": 1.0}, {}, loaded.model.cfg)
  return dataclasses.replace(gen, eos_token_id=None, forced_eos_token_id=None, min_length=0,
                             no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0)


def _jax_side(loaded, batches, gen, pack: bool, threads: int = 1):
  """Our side: the batches one after another, or `threads` at a time, each dispatched from
  its own thread (`testing.in_flight`, as test.py runs its batches)."""
  params = jax.device_put(loaded.params)
  calls = []
  for b in batches:
    ids, mask = jnp.asarray(b.context_ids_BxC), jnp.asarray(b.context_mask_BxC)
    rows = jnp.arange(ids.shape[0])
    plan = encoder_plan(loaded.model, b.context_mask_BxC) if pack else None
    calls.append(lambda ids=ids, mask=mask, rows=rows, plan=plan: generate_ids(
        loaded.model, params, ids, mask, gen, jax.random.PRNGKey(0), rows, plan).tokens_BxN)
  return lambda: [tokens for _, tokens in in_flight(calls, lambda call: call(), np.asarray,
                                                    threads)]


def _torch_side(loaded, batches, cfg: BenchConfig):
  import torch  # pylint: disable=import-outside-toplevel

  model = torch_twin(loaded)
  model.generation_config.eos_token_id = None  # no stop, as on our side
  left = not loaded.model.is_encoder_decoder
  pad = loaded.fmt.pad_id
  inputs = [trim_padding(b.context_ids_BxC, b.context_mask_BxC, left) for b in batches]

  def call():
    out = []
    with torch.no_grad():
      for ids, mask in inputs:
        seq = model.generate(input_ids=to_torch(ids), attention_mask=to_torch(mask),
                             max_new_tokens=cfg.max_new_tokens, num_beams=cfg.beam_width,
                             do_sample=False, pad_token_id=pad, length_penalty=1.0)
        seq = seq.cpu()  # waits for a GPU's work: the timed call ends with the tokens
        out.append(seq[:, 1:].numpy() if loaded.model.is_encoder_decoder
                   else seq[:, ids.shape[1]:].numpy())
    return out

  return call


def decode_flops(loaded, batches, gen) -> float:
  """XLA's FLOP count of generating on `batches` (no packing): the prefill once and
  `max_new_tokens` decoding steps. XLA's cost analysis counts a while loop's body once, so the
  step is counted as (prefill + one step) - (prefill alone), both compiled outside the loop.
  Beam search's per-step selection is left out (a count on the low side)."""
  total = 0.0
  for b in batches:
    prefill, step = prefill_and_step_flops(loaded.model, loaded.params, b.context_ids_BxC,
                                           b.context_mask_BxC, gen)
    total += prefill + gen.max_new_tokens * step
  return total


def prefill_and_step_flops(model, params, ids_BxC, mask_BxC, gen) -> tuple[float, float]:
  """XLA's FLOP counts of generation's prefill and of one decoding step (`decode_flops`)."""
  ids, mask = jnp.asarray(ids_BxC), jnp.asarray(mask_BxC)
  start = lambda p, i, m: search._start(model, p, i, m, gen, gen.beam_width, 0, None)  # pylint: disable=protected-access

  def one_step(p, i, m):
    s = start(p, i, m)
    return s.step(s.seq[:, s.prompt_len - 1], jnp.int32(s.prompt_len - 1), s.cache)

  prefill = C.xla_flops(jax.jit(lambda p, i, m: start(p, i, m).cache)
                        .lower(params, ids, mask).compile())
  with_step = C.xla_flops(jax.jit(one_step).lower(params, ids, mask).compile())
  return prefill, max(with_step - prefill, 0.0)


def measure(name, loaded, batches, gen, cfg: BenchConfig, pack: bool, threads: int = 1,
            strict: bool = True, roofline_shape=None) -> dict:
  """Tokens/s of each side on `batches`; with `threads` > 1 also ours with that many batches
  at a time (side "jax, N in flight"). The sides' tokens are compared first: a difference
  raises, or with `strict=False` is counted (`mismatched_rows`) and the timing goes on (a GPU's
  kernels may break a near-tie of two logits either way). With `roofline_shape`, the matmul
  probes run beside the repeats and the result has our side's `roofline`."""
  tokens = sum(b.context_ids_BxC.shape[0] for b in batches) * cfg.max_new_tokens
  real = sum(int(b.context_mask_BxC.sum()) for b in batches)
  padded = sum(b.context_mask_BxC.size for b in batches)
  print(f"\n{name}: {len(batches)} batch(es) of {cfg.batch_size}, contexts {real} real tokens "
        f"in {padded} bucket positions ({real / padded:.0%}); beams {cfg.beam_width}, "
        f"{cfg.max_new_tokens} new tokens{', context packing' if pack else ''}")
  sides = {"jax": _jax_side(loaded, batches, gen, pack)}
  if threads > 1:
    sides[f"jax, {threads} in flight"] = _jax_side(loaded, batches, gen, pack, threads)
  if cfg.torch and torch_available():
    sides["torch"] = _torch_side(loaded, batches, cfg)
    theirs = sides["torch"]()
    mismatched = 0
    for side in [s for s in sides if s != "torch"]:
      differing = 0
      for i, (a, b) in enumerate(zip(sides[side](), theirs)):
        if a.shape != b.shape or not np.array_equal(a, b):
          rows = int((a != b).any(1).sum()) if a.shape == b.shape else a.shape[0]
          if strict:
            raise AssertionError(
                f"{name}, batch {i}: {side}'s tokens differ from transformers' ({rows} rows); "
                f"the comparison would not be of the same work")
          differing += rows
      mismatched = max(mismatched, differing)
    rows = sum(t.shape[0] for t in theirs)
    print(f"same tokens as transformers on all {len(theirs)} batch(es): "
          f"{'yes' if not mismatched else f'no, {mismatched} of {rows} rows differ'}")
  probes = C.matmul_probes(roofline_shape) if roofline_shape else {}
  for probe in probes.values():
    probe()  # compiled before the timing (the sides were warmed by the equality check)
  times = interleaved({**sides, **probes}, cfg.repeats, warmup=False)
  out = {}
  if roofline_shape:
    out["roofline"] = C.roofline(times, decode_flops(loaded, batches, gen), roofline_shape)
  for side, seconds in times.items():
    print(f"{side:>18}: {describe(seconds)}, {tokens / spread(seconds)['median']:.1f} "
          f"tokens/s")
    out[side] = {"tokens_per_s": tokens / spread(seconds)["median"], **spread(seconds)}
  if "torch" in sides:
    out["mismatched_rows"] = mismatched
  return out


def decode_profile(loaded, batch, gen, repeats: int = 2) -> dict:
  """Where our decoding step's time goes on `batch` (`kernel_profile`), and the LM head's
  matmul timed alone in both frameworks at the step's shape: the work both sides do alike,
  which bounds how far ahead a faster rest of the step can put us."""
  params = jax.device_put(loaded.params)
  ids, mask = jnp.asarray(batch.context_ids_BxC), jnp.asarray(batch.context_mask_BxC)
  rows = jnp.arange(ids.shape[0])
  compiled = jax.jit(lambda p, i, m: generate_ids(
      loaded.model, p, i, m, gen, jax.random.PRNGKey(0), rows).tokens_BxN).lower(
          params, ids, mask).compile()
  jax.block_until_ready(compiled(params, ids, mask))
  kernels, wall = kernel_profile.profile(compiled, (params, ids, mask), repeats)
  summary = kernel_profile.per_step_table(kernels, gen.max_new_tokens, wall)
  summary["top_kernels"] = summary["top_kernels"][:8]
  m, k, n = C.lm_head_shape(loaded.model, ids.shape[0] * gen.beam_width)
  rng = np.random.default_rng(0)
  x, w = rng.normal(size=(m, k)).astype(np.float32), rng.normal(size=(n, k)).astype(np.float32)
  # Ours as a decoding step computes it (`Embed.attend(vocab_major=True)`: the embedding times
  # the transposed states), PyTorch's as transformers does (`F.linear`).
  head, x_, w_ = jax.jit(lambda x, w: jnp.dot(w, x.T)), jnp.asarray(x), jnp.asarray(w)
  sides = {"jax_lm_head": lambda: head(x_, w_).block_until_ready()}
  if torch_available():
    import torch  # pylint: disable=import-outside-toplevel

    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    sides["torch_lm_head"] = lambda: torch.nn.functional.linear(tx, tw)
  times = interleaved(sides, 10)
  summary["lm_head_shape"] = [m, k, n]
  for side, seconds in times.items():
    summary[f"{side}_ms"] = round(spread(seconds)["median"] * 1e3, 3)
  line = (f"the LM head alone ({m}x{k}x{n}): XLA {summary['jax_lm_head_ms']:.2f} ms")
  if "torch_lm_head_ms" in summary:
    line += f", PyTorch {summary['torch_lm_head_ms']:.2f} ms"
  print(line + f"; our whole step {summary['step_ms']:.2f} ms of kernel time")
  return summary


def run(cfg: BenchConfig) -> dict:
  from empathy_jax.models.loading import load_model  # pylint: disable=import-outside-toplevel

  pin_threads()
  matmul_rates()
  loaded = load_model(C.model_path(cfg))
  gen = gen_config(loaded, cfg)
  first = measure("first test rows (dataset order)", loaded, [test_batch(loaded, cfg)], gen,
                   cfg, pack=True)
  rows = cfg.batch_size * cfg.beam_width  # a decoding step's LM head: the largest matmul
  sorted_rows = measure("test.py's batches (test split, length-sorted)", loaded,
                         realistic_batches(loaded, cfg), gen, cfg, pack=False,
                         threads=IN_FLIGHT,
                         roofline_shape=C.lm_head_shape(loaded.model, rows))
  step = decode_profile(loaded, realistic_batches(loaded, cfg)[1], gen)
  torch_rate = lambda r: r["torch"]["tokens_per_s"] if "torch" in r else None
  concurrent_rate = sorted_rows[f"jax, {IN_FLIGHT} in flight"]["tokens_per_s"]
  return report(cfg, "tokens/s", sorted_rows["jax"]["tokens_per_s"], torch_rate(sorted_rows), {
      "beam_width": cfg.beam_width, "repeats": cfg.repeats,
      "in_flight": {"batches": IN_FLIGHT, "jax": round(concurrent_rate, 1),
                    "ratio": None if torch_rate(sorted_rows) is None else round(
                        concurrent_rate / torch_rate(sorted_rows), 3)},
      "first_rows": {"jax": round(first["jax"]["tokens_per_s"], 1),
                     "torch": None if torch_rate(first) is None else round(torch_rate(first), 1),
                     "ratio": None if torch_rate(first) is None else round(
                         first["jax"]["tokens_per_s"] / torch_rate(first), 3)},
      **sorted_rows["roofline"], "decode_step": step})
