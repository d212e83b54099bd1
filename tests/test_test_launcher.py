"""End to end: launch/test.py on a GODEL-format model over 64 test rows writes every key."""

import json
import os
import subprocess
import sys

from empathy_jax.evaluation import random_classifiers as ef
import hf_fixtures as hf
from conftest import ED_DIR, REPO
from empathy_jax.evaluation import classifiers as C

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
                        str(tmp_path / "epitome")], capture_output=True, text=True, cwd=REPO)
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

