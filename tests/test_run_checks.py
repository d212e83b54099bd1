"""Degenerate-output detection and the paired bootstrap interval, against direct counts and a
plain NumPy loop written out here."""

import os

import numpy as np
import pytest

from empathy_jax.evaluation.run_checks import degeneracy, paired_bootstrap


def test_a_constant_output_run_is_called_degenerate():
  d = degeneracy(["a."] * 120 + ["I am sorry.", " a. ", "Oh no", ""] + ["a."] * 4)
  assert d.rows == 128 and d.distinct == 4 and d.top_output == "a."
  assert d.top_share == pytest.approx(125 / 128) and d.empty_share == pytest.approx(1 / 128)
  assert d.collapsed and "98% of the 128 rows are the same answer ('a.')" in d.warning()
  varied = degeneracy([f"answer {i % 11}" for i in range(110)])
  assert varied.distinct == 11 and varied.top_share == pytest.approx(10 / 110)
  assert not varied.collapsed and varied.warning() is None


def test_paired_bootstrap_matches_a_plain_loop():
  rng = np.random.default_rng(3)
  before = rng.normal(0.0, 1.0, 200)
  after = before + rng.normal(0.3, 0.5, 200)
  change = paired_bootstrap(before, after, resamples=2000, seed=7)
  # The same resampling, one resample at a time.
  loop_rng, diff = np.random.default_rng(7), after - before
  means = []
  for _ in range(2):
    idx = loop_rng.integers(0, 200, size=(1000, 200))
    means += [diff[row].mean() for row in idx]
  low, high = np.quantile(means, [0.025, 0.975])
  assert change.low == pytest.approx(low) and change.high == pytest.approx(high)
  assert change.mean_change == pytest.approx(diff.mean())
  assert change.significant_increase and 0.2 < change.low < change.mean_change < change.high
  # No change: the interval straddles zero; pairs matter (unpaired noise would be far wider).
  same = paired_bootstrap(before, before + rng.normal(0.0, 0.01, 200))
  assert same.low < 0 < same.high and same.high - same.low < 0.01
  with pytest.raises(ValueError, match="equal, non-empty"):
    paired_bootstrap([1.0, 2.0], [1.0])


def test_the_report_warns_on_a_constant_output_run_and_leads_with_the_reward_change(tmp_path):
  import json

  from empathy_jax.pipeline_report import write_report

  rng = np.random.default_rng(0)
  tests, metrics = {}, {}
  sft_rewards = rng.normal(-0.1, 0.05, 64)
  for name, outputs, rewards in (
      ("SFT", [f"I am sorry about {i}." for i in range(64)], sft_rewards),
      ("SFT+PPO", ["a."] * 64, sft_rewards - 0.2)):
    folder = tmp_path / name
    folder.mkdir()
    rows = [{"id": i, "context": ["I lost my job."], "target": "Oh no.", "output": o,
             "reward_output": float(r)} for i, (o, r) in enumerate(zip(outputs, rewards))]
    (folder / "test_data.json").write_text(json.dumps(rows))
    tests[name] = str(folder)
    metrics[name] = {"bleu": 5.738e-232, "dist-2": 0.5, "mean_reward_output": float(np.mean(
        rewards)), "mean_reward_target": -0.01, "ppl": 123.456}
  stages = {s: str(tmp_path / s) for s in ("sft", "reward", "ppo")}
  for d in stages.values():
    os.makedirs(d)
  report = open(write_report(str(tmp_path / "report"), stages, metrics, tests, None, 2)).read()
  lines = report.splitlines()
  assert lines[2].startswith("**PPO changed mean held-out reward by -0.2000 [95% CI -0.2000, "
                             "-0.2000] on 64 test rows") and "a decrease" in lines[2]
  assert "> **Warning:** SFT+PPO: degenerate outputs: 100% of the 64 rows are the same " \
         "answer ('a.'); 1 distinct answers in all" in report
  assert "SFT: degenerate" not in report
  assert ("> **Warning:** Diversity, SFT+PPO against SFT: 1 distinct outputs against 64, dist-2 "
          "0.5000 against 0.5000 (+0%). Outside the stated margins") in report
  assert "| SFT | 0.0000 | 0.5000 |" in report and "123.46" in report  # no 5.738e-232
  assert "not comparable in level" in report
  assert "data:image/png;base64," in open(tmp_path / "report" / "report.html").read()
