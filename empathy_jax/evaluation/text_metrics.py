"""Text metrics computed as the original computes them, on whitespace tokens.

- BLEU: nltk `corpus_bleu` with weights 1/n, no smoothing; NIST: nltk `corpus_nist(n)`.
- dist-k: unique k-grams / total k-grams over all outputs. The original counts the total as
  sum(len - k + 1) over outputs *including negative terms* for outputs shorter than k; `dist-k`
  keeps that (so numbers compare with its published ones) and `dist-k_fixed` clips each term at 0.
- Bag-of-words cosines with the dialogue model's input embeddings (token ids, pads removed):
  average, extrema, greedy. The original's greedy is `a + b / 2` (an operator-precedence slip,
  with a = mean over target tokens of the best output match, b = the reverse); `greedy_bow` keeps
  it and `greedy_bow_symmetric` is `(a + b) / 2`.
"""

from __future__ import annotations

import functools
import logging
import threading
import warnings
from typing import Sequence

import numpy as np


def import_in_background() -> threading.Thread:
  """Starts importing nltk's BLEU/NIST (2-3 s: nltk pulls in scipy.stats) in a thread, so that
  it overlaps the generation instead of following it; `join()` the thread before scoring."""

  def load():
    import nltk.translate.bleu_score  # pylint: disable=import-outside-toplevel,unused-import
    import nltk.translate.nist_score  # pylint: disable=import-outside-toplevel,unused-import

  thread = threading.Thread(target=load, name="import-nltk", daemon=True)
  thread.start()
  return thread


def whitespace_tokens(text: str) -> list[str]:
  return text.strip().split(" ")


def bleu_nist(targets: Sequence[str], outputs: Sequence[str], n: int = 4) -> dict[str, float]:
  from nltk.translate.bleu_score import corpus_bleu  # pylint: disable=import-outside-toplevel
  from nltk.translate.nist_score import corpus_nist  # pylint: disable=import-outside-toplevel

  refs = [[whitespace_tokens(t)] for t in targets]
  hyps = [whitespace_tokens(o) for o in outputs]
  try:
    nist = float(corpus_nist(refs, hyps, n=n))
  except ZeroDivisionError:  # nltk divides by the matched n-gram count: none matched at all
    logging.warning("NIST: no %d-gram of any output matches a target; reporting 0", n)
    nist = 0.0
  with warnings.catch_warnings():  # nltk warns when an n-gram order has no overlap at all
    warnings.simplefilter("ignore")
    bleu = float(corpus_bleu(refs, hyps, weights=[1.0 / n] * n))
  return {"bleu": bleu, "nist": nist}


def distinct(outputs: Sequence[str], n: int = 4) -> dict[str, float]:
  hyps = [whitespace_tokens(o) for o in outputs]
  out = {}
  for k in range(1, n + 1):
    grams = {tuple(h[i:i + k]) for h in hyps for i in range(len(h) - k + 1)}
    original_total = sum(len(h) - k + 1 for h in hyps)
    total = sum(max(len(h) - k + 1, 0) for h in hyps)
    out[f"dist-{k}"] = len(grams) / original_total if original_total > 0 else 0.0
    out[f"dist-{k}_fixed"] = len(grams) / total if total > 0 else 0.0
  return out


def _padded_length(rows: Sequence[Sequence[int]]) -> int:
  length = max(1, max((len(r) for r in rows), default=1))
  return 1 << (length - 1).bit_length()  # power-of-two buckets: few compiles


def _pad(rows: Sequence[Sequence[int]], length: int,
         num_rows: int) -> tuple[np.ndarray, np.ndarray]:
  """Ids and mask of `rows`, padded to `length` columns and `num_rows` rows (the extra rows
  are all padding)."""
  ids = np.zeros((num_rows, length), np.int32)
  mask = np.zeros((num_rows, length), bool)
  for i, r in enumerate(rows):
    ids[i, :len(r)] = r
    mask[i, :len(r)] = True
  return ids, mask


@functools.cache
def _bow_batch_fn():
  """The jitted BOW kernel; JAX is imported on first use so that the metric functions above
  stay importable without it (the PyTorch reference loop of the benchmark uses them)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  def _cos(a, b, axis=-1):
    num = jnp.sum(a * b, axis=axis)
    den = jnp.linalg.norm(a, axis=axis) * jnp.linalg.norm(b, axis=axis)
    return jnp.where(den > 0, num / jnp.maximum(den, 1e-30), 0.0)

  def _bow_batch(emb_VxD, out_ids, out_mask, tgt_ids, tgt_mask):
    o = jnp.take(emb_VxD, out_ids, axis=0) * out_mask[..., None]  # BxLoxD
    t = jnp.take(emb_VxD, tgt_ids, axis=0) * tgt_mask[..., None]
    n_o = jnp.maximum(out_mask.sum(1, keepdims=True), 1)
    n_t = jnp.maximum(tgt_mask.sum(1, keepdims=True), 1)
    avg = _cos(o.sum(1) / n_o, t.sum(1) / n_t)

    def extrema(x, m):
      hi = jnp.max(jnp.where(m[..., None], x, -jnp.inf), axis=1)
      lo = jnp.min(jnp.where(m[..., None], x, jnp.inf), axis=1)
      return jnp.where(jnp.abs(hi) >= jnp.abs(lo), hi, lo)

    ext = _cos(extrema(o, out_mask), extrema(t, tgt_mask))
    on = o / jnp.maximum(jnp.linalg.norm(o, axis=-1, keepdims=True), 1e-30)
    tn = t / jnp.maximum(jnp.linalg.norm(t, axis=-1, keepdims=True), 1e-30)
    sim = jnp.einsum("bid,bjd->bij", on, tn)  # output i x target j
    both = out_mask[:, :, None] & tgt_mask[:, None, :]
    sim = jnp.where(both, sim, -jnp.inf)
    a = jnp.sum(jnp.where(tgt_mask, sim.max(1), 0.0), 1) / n_t[:, 0]  # over target tokens
    b = jnp.sum(jnp.where(out_mask, sim.max(2), 0.0), 1) / n_o[:, 0]  # over output tokens
    valid = out_mask.any(1) & tgt_mask.any(1)
    zero = lambda x: jnp.where(valid, x, 0.0)
    return zero(avg), zero(ext), zero(a + b / 2), zero((a + b) / 2)

  return jax.jit(_bow_batch)


def bow_similarity(embeddings_VxD, output_ids: Sequence[Sequence[int]],
                   target_ids: Sequence[Sequence[int]], batch_size: int = 256
                   ) -> dict[str, np.ndarray]:
  """Per-example BOW cosines; an empty output or target scores 0. Every batch has the same
  shape (the longest output and target of the run, `batch_size` rows): one program a run."""
  import jax  # pylint: disable=import-outside-toplevel

  keys = ("avg_bow", "extrema_bow", "greedy_bow", "greedy_bow_symmetric")
  parts = {k: [] for k in keys}
  bow_batch = _bow_batch_fn()
  emb = jax.numpy.asarray(embeddings_VxD, jax.numpy.float32)
  n = len(output_ids)
  rows = min(batch_size, max(n, 1))
  o_len, t_len = _padded_length(output_ids), _padded_length(target_ids)
  for s in range(0, n, rows):
    o_ids, o_mask = _pad(output_ids[s:s + rows], o_len, rows)
    t_ids, t_mask = _pad(target_ids[s:s + rows], t_len, rows)
    for k, v in zip(keys, bow_batch(emb, o_ids, o_mask, t_ids, t_mask)):
      parts[k].append(v)
  parts = jax.device_get(parts)  # one wait, after every batch is dispatched
  return {k: np.concatenate(v)[:n] if v else np.zeros(0) for k, v in parts.items()}
