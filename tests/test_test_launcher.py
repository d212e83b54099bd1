"""End to end: launch/test.py on a GODEL-format model over 64 test rows writes every key."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest

from benchmarks import random_classifiers as ef
import hf_fixtures as hf
from conftest import ED_DIR, REPO
from empathy_jax.evaluation import classifiers as C
from empathy_jax.evaluation.testing import in_flight

METRIC_KEYS = (["bleu", "nist"] + [f"dist-{k}" for k in range(1, 5)] +
               ["avg_bow", "extrema_bow", "greedy_bow", "greedy_bow_symmetric",
                "emotion_accuracy", "emotion_f1", "empintent_accuracy", "empintent_f1"] +
               [f"epitome_{m}_{s}" for m in ("IP", "EX", "ER") for s in ("output", "target")] +
               [f"diff_{m}" for m in ("IP", "EX", "ER")] + ["ppl"])
EXAMPLE_KEYS = (["id", "input", "context", "target", "output", "emotion_output",
                 "emotion_target", "empintent_output", "empintent_target"] +
                [f"epitome_{m}_{s}" for m in ("IP", "EX", "ER") for s in ("output", "target")])


def test_test_launcher_writes_every_key(tmp_path, ed_test):
  hf.save_torch_model("godel", str(tmp_path / "godel"))  # 2+2 layers: quick to compile
  ef.save_classifier(str(tmp_path / "emo"), "roberta", 32, [])
  ef.save_classifier(str(tmp_path / "intent"), "bert", 9, ed_test.targets[:300])
  ef.save_epitome(str(tmp_path / "epitome"))
  out_dir = tmp_path / "out"
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "test.py"),
                        "--dataset_dir", ED_DIR, "--pretrained_model_dir", str(tmp_path / "godel"), "--max_examples", "64",
                        "--batch_size", "32", "--max_new_tokens", "8", "--output_dir",
                        str(out_dir), "--emo_classifier_dir", str(tmp_path / "emo"),
                        "--intent_classifier_dir", str(tmp_path / "intent"), "--epitome_dir",
                        str(tmp_path / "epitome")], capture_output=True, text=True, cwd=REPO, timeout=900)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "bleu" in out.stdout and "ppl" in out.stdout
  with open(out_dir / "test_metrics.json") as f:
    metrics = json.load(f)
  assert set(METRIC_KEYS) <= set(metrics)
  with open(out_dir / "test_data.json") as f:
    data = json.load(f)
  assert [d["id"] for d in data] == list(range(64))
  assert data[5]["target"] == ed_test.targets[5] and data[5]["context"] == ed_test.contexts[5]
  assert data[0]["input"].startswith("Instruction: Given the dialog context")
  for row in data:
    assert set(EXAMPLE_KEYS) <= set(row)
    assert row["emotion_output"] in C.EMOTION_LABELS and row["epitome_ER_target"] in (0, 1, 2)
  with open(out_dir / "classwise_test_metrics.json") as f:
    classwise = json.load(f)
  assert set(classwise) == {"emotion", "empintent"}
  assert "proud_precision" in classwise["emotion"] and "wishing_f1" in classwise["empintent"]
  _check_values(tmp_path, data, metrics, classwise)


def _torch_labels(folder, texts, labels):
  """transformers' PyTorch classifier on `texts`, tokenized as the published folders say."""
  import torch
  import transformers

  model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
  tok = transformers.AutoTokenizer.from_pretrained(folder)
  enc = tok(list(texts), max_length=32, truncation=True, padding="max_length",
            return_tensors="pt")
  with torch.no_grad():
    return [labels[i] for i in model(**enc).logits.argmax(-1).tolist()]


def _check_values(tmp_path, rows, metrics, classwise):
  """The classifier metrics against values computed here: each row's labels from
  transformers' PyTorch classifiers, accuracy and weighted F1 counted in plain Python, the
  EPITOME means and squared differences from the per-row levels."""
  for key, folder, labels in (("emotion", "emo", C.EMOTION_LABELS),
                              ("empintent", "intent", C.INTENT_LABELS)):
    outputs = _torch_labels(str(tmp_path / folder), [r["output"] for r in rows], labels)
    targets = _torch_labels(str(tmp_path / folder), [r["target"] for r in rows], labels)
    assert [r[f"{key}_output"] for r in rows] == outputs
    assert [r[f"{key}_target"] for r in rows] == targets
    pairs = list(zip(outputs, targets))
    assert metrics[f"{key}_accuracy"] == pytest.approx(
        sum(o == t for o, t in pairs) / len(pairs), abs=1e-12)
    weighted = 0.0
    for label in set(targets):
      tp = sum(o == t == label for o, t in pairs)
      predicted, actual = outputs.count(label), targets.count(label)
      p, r = (tp / predicted if predicted else 0.0), tp / actual
      f1 = 2 * p * r / (p + r) if p + r else 0.0
      weighted += f1 * actual / len(pairs)
      assert classwise[key][f"{label}_f1"] == pytest.approx(f1, abs=1e-12)
    assert metrics[f"{key}_f1"] == pytest.approx(weighted, abs=1e-12)
  for m in ("IP", "EX", "ER"):
    out = [r[f"epitome_{m}_output"] for r in rows]
    tgt = [r[f"epitome_{m}_target"] for r in rows]
    assert metrics[f"epitome_{m}_output"] == pytest.approx(sum(out) / len(out), abs=1e-12)
    assert metrics[f"diff_{m}"] == pytest.approx(
        sum((a - b) ** 2 for a, b in zip(out, tgt)) / len(out), abs=1e-12)



def test_batches_in_flight_keep_order_overlap_and_stop_on_error():
  """`testing.in_flight`: results in batch order, every batch fetched once; with one thread the
  next batch is dispatched before the previous is fetched; with threads, programs dispatched
  from two threads overlap in time; an error stops the batches not yet started."""
  events, lock = [], threading.Lock()

  def dispatch(i):
    with lock:
      events.append(("dispatch", i))
    return i * 10

  active = [0, 0]  # fetches running now, the most at once

  def fetch(out):
    with lock:
      active[0] += 1
      active[1] = max(active)
    time.sleep(0.05)  # a device program running
    with lock:
      active[0] -= 1
      events.append(("fetch", out // 10))
    return out + 1

  one = list(in_flight(range(6), dispatch, fetch, threads=1))
  assert one == [(i, i * 10 + 1) for i in range(6)]
  assert events.index(("dispatch", 1)) < events.index(("fetch", 0))  # one dispatched ahead

  assert active[1] == 1

  events.clear()
  two = list(in_flight(range(6), dispatch, fetch, threads=2))
  assert two == one and sorted(events) == sorted(("dispatch", i) for i in range(6)) + sorted(
      ("fetch", i) for i in range(6))
  assert active[1] == 2  # two at a time, not one after another

  started = []

  def failing(i):
    started.append(i)
    if i == 1:
      raise ValueError("batch 1 is bad")
    time.sleep(0.05)
    return i

  with pytest.raises(ValueError, match="batch 1"):
    list(in_flight(range(40), failing, lambda out: out, threads=2))
  time.sleep(0.2)
  assert len(started) < 10, started  # the rest were cancelled, not run
