import json
import os
import subprocess
import sys

from conftest import ED_DIR, REPO


def run(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "launch", "validate_dataset.py"),
                         *args], capture_output=True, text=True, cwd=REPO)


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
