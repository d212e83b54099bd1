"""`launch/compare.py` on result folders as test.py writes them: the CSV holds every model's
numbers, the plot's data file the numbers plotted (ours and the original's published files),
the PNG is a real image, and the side-by-side examples are each model's own outputs."""

import csv
import json
import os
import subprocess
import sys

import numpy as np

from conftest import REPO

LAUNCHER = os.path.join(REPO, "launch", "compare.py")
PUBLISHED = os.path.join(REPO, "datasets", "published_results")


def _write_run(folder, metrics, outputs):
  os.makedirs(folder)
  with open(os.path.join(folder, "test_metrics.json"), "w") as f:
    json.dump(metrics, f)
  rows = [{"id": i, "context": [f"context {i}"], "target": f"target {i}", "output": out,
           "reward_output": 0.1 * i} for i, out in enumerate(outputs)]
  with open(os.path.join(folder, "test_data.json"), "w") as f:
    json.dump(rows, f)


def test_compare_tables_plots_and_examples(tmp_path):
  root = tmp_path / "outputs"
  a = {"bleu": 0.011, "dist-2": 0.2, "ppl": 40.5, "mean_reward_output": 0.3}
  b = {"bleu": 0.007, "dist-2": 0.25, "ppl": 60.0, "emotion_accuracy": 0.15, "custom": 1.5}
  _write_run(root / "sft", a, [f"sft says {i}" for i in range(6)])
  _write_run(root / "ppo" / "best", b, [f"ppo says {i}" for i in range(6)])
  out = tmp_path / "compare"
  done = subprocess.run([sys.executable, LAUNCHER, "--root", str(root), "--output_dir", str(out),
                         "--num_examples", "2"], capture_output=True, text=True, cwd=REPO,
                        timeout=120)
  assert done.returncode == 0, done.stderr[-3000:]

  with open(out / "compare.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["model"] for r in rows] == ["ppo/best", "sft"]
  assert list(rows[0])[:4] == ["model", "bleu", "dist-2", "emotion_accuracy"]  # original order
  by_name = {r["model"]: r for r in rows}
  for name, metrics in (("sft", a), ("ppo/best", b)):
    for k, v in metrics.items():
      assert float(by_name[name][k]) == v
  assert by_name["sft"]["custom"] == ""  # missing, not zero

  plotted = json.load(open(out / "compare.json"))
  assert plotted["bleu"]["ours"] == {"ppo/best": 0.007, "sft": 0.011}
  assert plotted["emotion_accuracy"]["ours"] == {"ppo/best": 0.15}
  published = json.load(open(os.path.join(PUBLISHED, "GODEL_EMPDIAL", "test_metrics.json")))
  assert plotted["bleu"]["published"]["GODEL_EMPDIAL (published)"] == published["bleu"]
  assert "custom" not in plotted  # only the main metrics are plotted
  import matplotlib.image  # pylint: disable=import-outside-toplevel

  image = matplotlib.image.imread(out / "compare.png")
  assert image.shape[0] > 200 and image.shape[1] > 200 and np.unique(image).size > 10

  examples = json.load(open(out / "compare_examples.json"))
  assert len(examples) == 2 and len({e["id"] for e in examples}) == 2
  for e in examples:
    i = e["id"]
    assert e["target"] == f"target {i}"
    assert e["outputs"]["sft"]["output"] == f"sft says {i}"
    assert e["outputs"]["ppo/best"] == {"output": f"ppo says {i}", "reward_output": 0.1 * i}
  assert "ppo/best" in done.stdout and "GPT3 (published)" in done.stdout
  assert f"[sft] sft says {examples[0]['id']}" in done.stdout


def test_a_bad_metrics_file_is_named(tmp_path):
  bad = tmp_path / "outputs" / "broken"
  os.makedirs(bad)
  (bad / "test_metrics.json").write_text(json.dumps({"bleu": "high"}))
  done = subprocess.run([sys.executable, LAUNCHER, "--root", str(tmp_path / "outputs"),
                         "--output_dir", str(tmp_path / "c")], capture_output=True, text=True,
                        cwd=REPO, timeout=120)
  assert done.returncode == 1
  assert "broken/test_metrics.json" in done.stderr and "'bleu' is not a number" in done.stderr
