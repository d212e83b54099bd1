"""No launcher overwrites what another run wrote without --overwrite; a results set is replaced
whole (a SIGKILL mid-write leaves either the old set or none a reader trusts); a conversion
replaces its output whole or not at all."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ED_DIR, REPO
from empathy_jax.errors import OutputExistsError
from empathy_jax.evaluation import results
from empathy_jax.evaluation.suite import ScoreConfig
from empathy_jax.evaluation.testing import TestConfig as EvalConfig
from empathy_jax.llm.client import ClientConfig
from empathy_jax.llm.runner import LLMTestConfig
from empathy_jax.models import loading


def _snapshot(folder):
  return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder))}


def _other_results(folder, tool="test.py", model="another model"):
  results.write(str(folder), [{"id": 0, "output": "x"}], {"bleu": 0.5}, {},
                results.provenance(tool, model=model))


def test_results_provenance_decides_what_may_be_replaced(tmp_path):
  a, b = results.provenance("test.py", model="A"), results.provenance("test.py", model="B")
  results.write(str(tmp_path), [], {"n": 1}, {}, a)
  assert results.matching(str(tmp_path), a) and not results.matching(str(tmp_path), b)
  results.check_free(str(tmp_path), a, overwrite=False)  # the same run may rewrite its own
  with pytest.raises(OutputExistsError, match="written by test.py on A .*--overwrite"):
    results.check_free(str(tmp_path), b, overwrite=False)
  results.check_free(str(tmp_path), b, overwrite=True)
  os.remove(tmp_path / "classwise_test_metrics.json")
  assert not results.matching(str(tmp_path), a)  # an incomplete set is never reused
  (tmp_path / results.INFO).unlink()
  with pytest.raises(OutputExistsError, match="did not record its settings"):
    results.check_free(str(tmp_path), a, overwrite=False)


_WRITER = """
import sys, time
from empathy_jax.evaluation import results
out, n = sys.argv[1], 0
while True:
  n += 1
  big = [{"id": i, "output": "x" * 200, "n": n} for i in range(2000)]
  results.write(out, big, {"n": n}, {"n": n}, results.provenance("writer", model=str(n)))
"""


def test_a_kill_mid_write_leaves_a_set_that_is_whole_or_untrusted(tmp_path):
  """A real process rewrites a results set in a loop and is SIGKILLed at an unplanned point:
  whenever results_info.json is there, every file is the one it describes."""
  out = tmp_path / "res"
  for delay in (0.0, 0.03, 0.11, 0.29):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(out)], cwd=REPO)
    deadline = time.time() + 120
    while not (out / "test_data.json").exists() and time.time() < deadline:
      time.sleep(0.01)  # the kill comes while it rewrites, not before it started
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    info_path = out / results.INFO
    if not info_path.exists():
      assert not results.matching(str(out), results.provenance("writer", model="1"))
      continue
    n = int(json.loads(info_path.read_text())["model"])
    assert json.loads((out / "test_metrics.json").read_text()) == {"n": n}
    assert json.loads((out / "classwise_test_metrics.json").read_text()) == {"n": n}
    rows = json.loads((out / "test_data.json").read_text())
    assert len(rows) == 2000 and {r["n"] for r in rows} == {n}


def test_test_py_refuses_another_runs_results_before_any_work(tmp_path):
  out = tmp_path / "out"
  _other_results(out)
  before = _snapshot(out)
  r = subprocess.run([sys.executable, os.path.join(REPO, "launch", "test.py"), "--model",
                      "GODEL_TINY", "--dataset_dir", ED_DIR, "--output_dir", str(out),
                      "--max_examples", "4"], capture_output=True, text=True, timeout=300,
                     cwd=tmp_path)
  last = (r.stdout + r.stderr).strip().splitlines()[-1]
  assert r.returncode == 1 and last.startswith(f"error: {out}: holds results written by "
                                               f"test.py on another model"), r.stderr[-2000:]
  assert "--overwrite" in last and _snapshot(out) == before
  cfg = dict(dataset_dir=ED_DIR, model="GODEL_TINY", output_dir=str(out), max_examples=4)
  EvalConfig(**cfg, overwrite=True).check_inputs()  # the flag lets it through
  # The same model and settings are the same run (a rerun after a crash): allowed.
  results.write(str(out), [], {}, {}, EvalConfig(**cfg).provenance())
  EvalConfig(**cfg).check_inputs()
  with pytest.raises(OutputExistsError):  # any setting that changes numbers is another run
    EvalConfig(**cfg, seed=1).check_inputs()
  with pytest.raises(OutputExistsError):
    EvalConfig(**cfg, scores=ScoreConfig(metric_n_grams=2)).check_inputs()


def test_score_py_keeps_another_runs_metrics_unless_told(tmp_path):
  """score.py beside a test.py result refuses; with --overwrite it rescores in place and keeps
  the perplexity test.py measured (score.py has no model to measure it with)."""
  run = tmp_path / "run"
  rows = [{"id": i, "context": ["I lost my job today."], "target": "Oh no, I am sorry.",
           "output": o} for i, o in enumerate(["I am so sorry.", "That is sad.", "Oh no."])]
  results.write(str(run), rows, {"bleu": 0.1, "ppl": 42.5}, {},
                results.provenance("test.py", model="M"))
  before = _snapshot(run)
  score = [sys.executable, os.path.join(REPO, "launch", "score.py"), "--test_data",
           str(run / "test_data.json"), "--metric_n_grams", "2"]
  r = subprocess.run(score, capture_output=True, text=True, timeout=300, cwd=tmp_path)
  last = (r.stdout + r.stderr).strip().splitlines()[-1]
  assert r.returncode == 1 and last.startswith(f"error: {run}: holds results written by "
                                               f"test.py on M"), r.stderr[-2000:]
  assert _snapshot(run) == before
  r = subprocess.run(score + ["--overwrite"], capture_output=True, text=True, timeout=300,
                     cwd=tmp_path)
  assert r.returncode == 0, r.stderr[-2000:]
  metrics = json.loads((run / "test_metrics.json").read_text())
  assert metrics["ppl"] == 42.5 and "dist-2" in metrics and metrics["bleu"] != 0.1
  info = json.loads((run / results.INFO).read_text())
  assert info["tool"] == "score.py" and info["test_data"] == str(run / "test_data.json")


def test_test_llm_refuses_a_folder_of_other_results(tmp_path):
  _other_results(tmp_path)
  client = ClientConfig(base_url="http://127.0.0.1:9", model_name="m")
  with pytest.raises(OutputExistsError, match="--overwrite"):
    LLMTestConfig(dataset_dir=ED_DIR, output_dir=str(tmp_path), client=client).check_inputs()
  LLMTestConfig(dataset_dir=ED_DIR, output_dir=str(tmp_path), client=client,
                overwrite=True).check_inputs()


def test_convert_refuses_an_existing_output_and_replaces_it_whole(tmp_path, monkeypatch):
  out = tmp_path / "ours"
  out.mkdir()
  (out / "stale.txt").write_text("from an older conversion")
  r = subprocess.run([sys.executable, os.path.join(REPO, "launch", "convert_checkpoint.py"),
                      "--input", "GODEL_TINY", "--to", "ours", "--output", str(out)],
                     capture_output=True, text=True, timeout=300, cwd=tmp_path)
  last = (r.stdout + r.stderr).strip().splitlines()[-1]
  assert r.returncode == 1 and last == (f"error: {out}: already exists; pass --overwrite to "
                                        f"replace it, or choose another --output"), r.stderr
  # A conversion that fails half-way leaves the old folder as it was, and no staging folder.
  def broken_save(loaded, path, **kw):
    os.makedirs(path)
    (open(os.path.join(path, "half.bin"), "w")).close()
    raise OSError("disk full")
  monkeypatch.setattr(loading.model_dir, "save", broken_save)
  with pytest.raises(OSError, match="disk full"):
    loading.convert_checkpoint("GODEL_TINY", str(out), "ours", overwrite=True)
  assert sorted(os.listdir(tmp_path)) == ["ours"] and os.listdir(out) == ["stale.txt"]
  monkeypatch.undo()
  loading.convert_checkpoint("GODEL_TINY", str(out), "ours", overwrite=True)
  assert "stale.txt" not in os.listdir(out) and "model_info.json" in os.listdir(out)
  assert sorted(os.listdir(tmp_path)) == ["ours"]
