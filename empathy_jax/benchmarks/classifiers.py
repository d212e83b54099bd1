"""Classifier-suite throughput (examples/s): emotion, intent and EPITOME IP/EX/ER on output and
target, in jitted batches, versus the original's one-example-at-a-time PyTorch loop on the same
random weights (RoBERTa-base sized by default), plus the achieved fraction of the FLOP rate."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time

import jax
import numpy as np

from empathy_jax.benchmarks.common import (BenchConfig, matmul_flops_per_second, report,
                                           torch_available)
from empathy_jax.data.dialogue_dataset import load_dialogue_split
from empathy_jax.evaluation import classifiers as C
from empathy_jax.evaluation import encoders as E
from empathy_jax.evaluation import random_classifiers as R

MAX_SEQ_LENGTH = 64


def _examples(cfg: BenchConfig, n: int):
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "test"), 1.0)
  rng = np.random.default_rng(0)
  outputs = [split.targets[i] for i in rng.permutation(len(split))[:n]]
  return [c[-1] for c in split.contexts[:n]], split.targets[:n], outputs


def _flops(fn, *args) -> float:
  cost = jax.jit(fn).lower(*args).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def run(cfg: BenchConfig, size: str = "base") -> dict:
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
    for clf in (emo, intent):
      clf.predict(outputs, n), clf.predict(targets, n)
    for mech in C.EPITOME_MECHANISMS:
      epitome.levels(mech, seekers, outputs, n), epitome.levels(mech, seekers, targets, n)

  ours()  # compile
  start = time.perf_counter()
  ours()
  seconds = time.perf_counter() - start
  jax_eps = n / seconds
  ids = np.ones((n, MAX_SEQ_LENGTH), np.int32)
  flops = 4 * _flops(lambda p, i, m: E.classify(p, emo.cfg, i, m), emo.params, ids, ids)
  flops += 6 * _flops(lambda p, a, b, c, d: E.epitome(p, epitome.cfg, a, b, c, d),
                      epitome.params["IP"], ids, ids, ids, ids)
  peak = matmul_flops_per_second()
  fraction = flops / seconds / peak
  print(f"{size} classifiers, {n} examples (each scored 10 times: 2 classifiers + 3 EPITOME "
        f"mechanisms, on output and target)")
  print(f"jax batched: {seconds:.2f} s, {jax_eps:.2f} examples/s, "
        f"{fraction:.1%} of the measured fp32 matmul rate ({peak / 1e9:.0f} GFLOP/s)")
  torch_eps = None
  if cfg.torch and torch_available():
    import torch  # pylint: disable=import-outside-toplevel

    def one(model, tok, text):
      enc = tok(text, max_length=MAX_SEQ_LENGTH, truncation=True, padding="max_length",
                return_tensors="pt")
      return model(**enc).logits.argmax(-1)

    def original_loop():
      with torch.no_grad():
        for i in range(n):
          for model, tok in ((emo_t, emo_tok), (int_t, int_tok)):
            one(model, tok, outputs[i]), one(model, tok, targets[i])
          s = emo_tok(seekers[i], max_length=64, truncation=True, return_tensors="pt")
          for model in epi_t.values():
            for text in (outputs[i], targets[i]):
              r = emo_tok(text, max_length=64, truncation=True, return_tensors="pt")
              model(s["input_ids"], s["attention_mask"], r["input_ids"], r["attention_mask"])

    start = time.perf_counter()
    original_loop()
    torch_seconds = time.perf_counter() - start
    torch_eps = n / torch_seconds
    print(f"torch one at a time: {torch_seconds:.2f} s, {torch_eps:.2f} examples/s")
  return report(dataclasses.replace(cfg, model="classifier-suite"), "examples/s", jax_eps,
                torch_eps, {"flop_fraction": round(fraction, 3), "size": size})
