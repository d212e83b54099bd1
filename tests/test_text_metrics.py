"""Text metrics against nltk and the original's formulas; the original's published numbers."""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from nltk.translate.bleu_score import corpus_bleu
from nltk.translate.nist_score import corpus_nist

from conftest import REPO
from empathy_jax.evaluation import text_metrics as T

ORIGINAL_OUTPUTS = os.path.join(os.path.dirname(__file__), "..", "datasets", "original_outputs")


def test_bleu_nist_dist_on_real_targets_vs_shuffled(ed_test):
  targets = ed_test.targets
  outputs = list(targets)
  random.Random(0).shuffle(outputs)
  ours = {**T.bleu_nist(targets, outputs, 4), **T.distinct(outputs, 4)}
  refs = [[t.strip().split(" ")] for t in targets]
  hyps = [o.strip().split(" ") for o in outputs]
  assert ours["bleu"] == corpus_bleu(refs, hyps, weights=[0.25] * 4)
  assert ours["nist"] == corpus_nist(refs, hyps, n=4)
  for k in range(1, 5):
    grams = [tuple(h[i:i + k]) for h in hyps for i in range(len(h) - k + 1)]
    assert ours[f"dist-{k}_fixed"] == len(set(grams)) / len(grams)
    # The original's total counts len - k + 1 even when negative (outputs shorter than k).
    assert ours[f"dist-{k}"] == len(set(grams)) / sum(len(h) - k + 1 for h in hyps)


def test_score_launcher_reproduces_published_godel_large_metrics(tmp_path):
  with open(os.path.join(ORIGINAL_OUTPUTS, "GODEL_LARGE_listener_split_metrics.json")) as f:
    published = json.load(f)
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "score.py"),
                        "--test_data", os.path.join(ORIGINAL_OUTPUTS, "GODEL_LARGE_listener_split.json"),
                        "--output_dir", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  with open(tmp_path / "test_metrics.json") as f:
    ours = json.load(f)
  for key in ("bleu", "nist", "dist-1", "dist-2", "dist-3", "dist-4"):
    assert ours[key] == published[key], key  # to the last digit
  with open(tmp_path / "test_data.json") as f:
    assert len(json.load(f)) == 5255


def _reference_bow(emb, o, t):
  """The original's formulas, one example at a time in numpy."""
  cos = lambda a, b: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
  eo, et = emb[o], emb[t]
  ext = lambda x: np.where(np.abs(x.max(0)) >= np.abs(x.min(0)), x.max(0), x.min(0))
  sim = np.array([[cos(a, b) for b in et] for a in eo])
  a, b = sim.max(0).mean(), sim.max(1).mean()
  return {"avg_bow": cos(eo.mean(0), et.mean(0)), "extrema_bow": cos(ext(eo), ext(et)),
          "greedy_bow": a + b / 2, "greedy_bow_symmetric": (a + b) / 2}


def test_bow_similarity_matches_formulas():
  rng = np.random.default_rng(0)
  emb = rng.normal(size=(50, 16)).astype(np.float32)
  outs = [list(rng.integers(0, 50, size=n)) for n in (1, 3, 7, 12, 5)]
  tgts = [list(rng.integers(0, 50, size=n)) for n in (4, 9, 2, 6, 1)]
  compiled = T._bow_batch_fn()._cache_size()  # pylint: disable=protected-access
  ours = T.bow_similarity(emb, outs, tgts, batch_size=2)
  # Batches of other lengths and a short last batch share one program.
  assert T._bow_batch_fn()._cache_size() == compiled + 1  # pylint: disable=protected-access
  assert all(len(v) == len(outs) for v in ours.values())
  for i, (o, t) in enumerate(zip(outs, tgts)):
    ref = _reference_bow(emb, o, t)
    for k, v in ref.items():
      assert ours[k][i] == pytest.approx(v, abs=1e-5), (k, i)
  empty = T.bow_similarity(emb, [[]], [[1, 2]])
  assert all(v[0] == 0 for v in empty.values())
