import json
import os
import subprocess
import sys

from conftest import ED_DIR, REPO


def run(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "launch", "validate_dataset.py"),
                         *args], capture_output=True, text=True, cwd=REPO, timeout=600)


def test_good_dataset_exits_zero_with_summary():
  out = run("--dataset_dir", ED_DIR)
  assert out.returncode == 0, out.stderr
  assert "test: 5242 examples" in out.stdout and "no problems found" in out.stdout


def test_broken_dataset_lists_every_problem(tmp_path):
  for split in ("train", "val", "test"):
    d = tmp_path / split
    d.mkdir()
    (d / "contexts.json").write_text(json.dumps([["a"], []]))
    (d / "targets.json").write_text(json.dumps(["x"] if split == "val" else ["x", "y"]))
  out = run("--dataset_dir", str(tmp_path))
  assert out.returncode == 1
  assert "train/contexts.json[1]: empty context" in out.stdout
  assert "different lengths: contexts.json=2, targets.json=1" in out.stdout


def test_empty_splits_and_unrated_contexts_are_problems_not_crashes(tmp_path):
  """An empty split (was a traceback: the max of an empty list) and a reward context with no
  ratings (was trained to a NaN loss) are listed like every other problem; score.py on an
  empty test_data.json says so."""
  for split in ("train", "val", "test"):
    (tmp_path / split).mkdir()
    (tmp_path / split / "contexts.json").write_text("[]" if split == "val" else '[["a"]]')
    (tmp_path / split / "targets.json").write_text("[]" if split == "val" else '["x"]')
  out = run("--dataset_dir", str(tmp_path))
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
  assert "val/contexts.json: has no examples (an empty list)" in out.stdout
  reward = tmp_path / "reward" / "train"
  reward.mkdir(parents=True)
  (reward / "contexts.json").write_text(json.dumps([["I lost my job."], ["I won!"]]))
  (reward / "responses.json").write_text(json.dumps([["Oh no.", "Nice."], ["Great!", "Ok."]]))
  (reward / "ratings.json").write_text(json.dumps([[[0, 1, -1.0]], []]))
  out = run("--dataset_dir", str(tmp_path / "reward"))
  assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
  assert "train/ratings.json[1]: has no ratings" in out.stdout
  data = tmp_path / "test_data.json"
  data.write_text("[]")
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "score.py"),
                        "--test_data", str(data)], capture_output=True, text=True, cwd=REPO,
                       timeout=300)
  last = (out.stdout + out.stderr).strip().splitlines()[-1]
  assert out.returncode == 1 and last.startswith("error: ") and "has no examples" in last, last
