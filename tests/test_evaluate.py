"""`launch/evaluate.py` driven through a real pseudo-terminal as a rater uses it: bad keystrokes
are asked again, a SIGKILL while an answer is being typed loses only that answer, the rerun with
--reuse_cache asks only for what is missing, and the results (model scores, the correlation
heatmap's numbers) equal the same statistics computed here from the ratings typed."""

import json
import os
import signal
import sys

import numpy as np
import pexpect
import pytest

from conftest import REPO

LAUNCHER = os.path.join(REPO, "launch", "evaluate.py")
PROMPT = r"(Empathy|Specificity) of response (\d) \(0-5\): "
RESPONSE = r"Response (\d): ([^\r\n]*)\r\n"


def _write_model(folder, name, n=8):
  os.makedirs(folder)
  rows = [{"id": i, "context": [f"I lost my keys again, day {i}."], "target": "Oh no!",
           "output": f"{name} answer {i}", "epitome_ER_output": (i + len(name)) % 3,
           "epitome_ER_target": 1, "epitome_EX_output": i % 2, "epitome_EX_target": 0,
           "epitome_IP_output": (2 * i) % 3, "epitome_IP_target": 2,
           "reward_output": 0.25 * i - (0.5 if name == "ppo" else 0.0)} for i in range(n)]
  (folder / "test_data.json").write_text(json.dumps(rows))
  return rows


def rating(output: str, criterion: str) -> int:
  """What our rater types for a response: a function of the model and the example."""
  name, _, i = output.split()
  i = int(i)
  if criterion == "Empathy":
    return (i + (1 if name == "sft" else 4)) % 6
  return (2 * i + len(name)) % 6


def _session(args, answers_before_kill=None):
  """Answers every prompt; returns the number answered (and kills the process mid-answer
  after `answers_before_kill`)."""
  child = pexpect.spawn(sys.executable, [LAUNCHER, *args], cwd=REPO, encoding="utf-8",
                        timeout=60, env=dict(os.environ, COLUMNS="200"))
  shown, answered, bad_tried = {}, 0, False
  while True:
    i = child.expect([RESPONSE, PROMPT, pexpect.EOF])
    if i == 0:
      shown[child.match.group(1)] = child.match.group(2).strip()
      continue
    if i == 2:
      child.close()
      return answered, child.exitstatus
    criterion, j = child.match.group(1), child.match.group(2)
    if answers_before_kill is not None and answered == answers_before_kill:
      child.send("3")  # typed, not yet entered
      child.kill(signal.SIGKILL)
      child.close()
      return answered, child.signalstatus
    if not bad_tried:  # bad keystrokes are asked again
      for bad in ("x", "7", "-1"):
        child.sendline(bad)
        child.expect(r"please type a whole number from 0 to 5")
        child.expect(PROMPT)
      bad_tried = True
    child.sendline(str(rating(shown[j], criterion)))
    answered += 1


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_rating_session_with_bad_keys_a_kill_and_a_resume(tmp_path):
  rows = {name: _write_model(tmp_path / name, name) for name in ("sft", "ppo")}
  out = tmp_path / "human"
  args = ["--model_dirs", f"{tmp_path / 'sft'},{tmp_path / 'ppo'}", "--output_dir", str(out),
          "--num_samples", "4", "--seed", "3"]
  answered, status = _session(args, answers_before_kill=5)
  assert answered == 5 and status == signal.SIGKILL
  saved = json.load(open(out / "human_eval.json"))
  kept = sum(len(r) for s in saved["samples"] for r in s["ratings"].values())
  assert kept == 5  # every entered answer survived the kill, the half-typed one did not
  assert not (out / "model_scores.json").exists()

  # Without --reuse_cache an existing session is not overwritten.
  refused = pexpect.run(f"{sys.executable} {LAUNCHER} {' '.join(args)}", cwd=REPO,
                        encoding="utf-8", withexitstatus=True)
  assert refused[1] == 1 and "--reuse_cache" in refused[0]

  answered, status = _session([*args, "--reuse_cache"])
  assert status == 0 and answered == 4 * 2 * 2 - 5  # only what was missing was asked

  session = json.load(open(out / "human_eval.json"))
  assert len({s["id"] for s in session["samples"]}) == 4
  table = []
  for s in session["samples"]:
    assert sorted(s["order"]) == ["ppo", "sft"]
    for name in ("sft", "ppo"):
      row = rows[name][s["id"]]
      got = s["ratings"][name]
      assert got == {"empathy": rating(row["output"], "Empathy"),
                     "specificity": rating(row["output"], "Specificity")}
      table.append([(row[f"epitome_{m}_output"] - row[f"epitome_{m}_target"]) ** 2
                    for m in ("ER", "EX", "IP")] + [row["reward_output"], got["empathy"],
                                                    got["specificity"]])
  scores = json.load(open(out / "model_scores.json"))
  for name in ("sft", "ppo"):
    emp = [s["ratings"][name]["empathy"] for s in session["samples"]]
    assert scores[name]["empathy"]["mean"] == np.mean(emp)
    assert scores[name]["empathy"]["var"] == np.var(emp)
  corr = json.load(open(out / "human_eval_correlation.json"))
  assert corr["variables"] == ["diff_ER", "diff_EX", "diff_IP", "reward", "empathy",
                               "specificity"] and corr["n"] == 8
  want = np.corrcoef(np.asarray(table, float).T)
  got = np.asarray([[np.nan if v is None else v for v in r] for r in corr["pearson"]])
  np.testing.assert_allclose(got, want, atol=1e-12)
  import matplotlib.image  # pylint: disable=import-outside-toplevel

  image = matplotlib.image.imread(out / "human_eval_correlation.png")
  assert image.shape[0] > 200 and np.unique(image).size > 10
