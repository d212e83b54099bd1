"""`launch/multi_turn.py`: unattended and batched from a speaker file (each reply equals
transformers' greedy `generate` on the formatted history, each reward the reward model's score
of that history and reply), and interactive through a pseudo-terminal."""

import json
import os
import re
import subprocess
import sys

import matplotlib.image
import numpy as np
import pexpect
import pytest

import hf_fixtures as hf
from conftest import REPO
from empathy_jax.models import reward_model
from empathy_jax.models.loading import load_model

LAUNCHER = os.path.join(REPO, "launch", "multi_turn.py")
SESSIONS = [["I lost my job today.", "I do not know what to do.", "Maybe you are right."],
            ["My sister is visiting next week!", "We have not met in years."],
            ["I am scared of the dark.", "It started when I was a kid.", "Thank you."]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("multi_turn_models")
  policy = str(root / "policy")
  torch_model, _ = hf.save_torch_model("dialogpt", policy)  # 2 layers: quick to compile
  rm = str(root / "rm")
  reward_model.save(reward_model.new_reward_model(load_model(policy), seed=5), rm)
  return policy, rm, torch_model


def _torch_reply(model, fmt, history):
  import torch  # pylint: disable=import-outside-toplevel

  ids = torch.tensor([fmt.encode_context(history).ids])
  with torch.no_grad():
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         num_beams=1, max_new_tokens=6, pad_token_id=fmt.pad_id)
  return fmt.decode(out[0, ids.shape[1]:].numpy()).strip()


def test_speaker_file_sessions_batched(models, tmp_path):
  policy, rm, torch_model = models
  speakers = tmp_path / "sessions.json"
  speakers.write_text(json.dumps(SESSIONS))
  out = tmp_path / "out"
  done = subprocess.run([sys.executable, LAUNCHER, "--pretrained_model_dir", policy,
                         "--reward_model_dir", rm, "--output_dir", str(out), "--speaker_file",
                         str(speakers), "--max_turns", "3", "--batch_size", "4",
                         "--max_new_tokens", "6", "--beam_width", "1", "--sample=false"],
                        capture_output=True, text=True, cwd=REPO, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  results = json.load(open(out / "multi_turn.json"))
  assert [[t["speaker"] for t in s["turns"]] for s in results] == SESSIONS
  fmt = load_model(policy).fmt
  scorer = reward_model.load_scorer(rm, batch_size=4)
  for s in results:
    history = []
    for turn in s["turns"]:
      history.append(turn["speaker"])
      assert turn["response"] == _torch_reply(torch_model, fmt, history)
      want = scorer([list(history)], [turn["response"]])[0]
      assert turn["reward"] == pytest.approx(float(want), rel=1e-4, abs=1e-5)
      history.append(turn["response"])
  # The printed means are the plot's black line: the mean over sessions at each turn.
  means = [float(x) for x in re.search(r"mean reward per turn: (.*)", done.stdout).group(1)
           .split(", ")]
  want = [np.mean([s["turns"][t]["reward"] for s in results if t < len(s["turns"])])
          for t in range(3)]
  np.testing.assert_allclose(means, want, atol=1e-4)
  image = matplotlib.image.imread(out / "multi_turn.png")
  assert image.shape[0] > 200 and np.unique(image).size > 10


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_interactive_session(models, tmp_path):
  policy, rm, _ = models
  out = tmp_path / "typed"
  child = pexpect.spawn(sys.executable, [LAUNCHER, "--pretrained_model_dir", policy,
                                         "--reward_model_dir", rm, "--output_dir", str(out),
                                         "--max_turns", "2", "--max_sessions", "2",
                                         "--max_new_tokens", "6", "--beam_width", "1",
                                         "--sample=false"],
                        cwd=REPO, encoding="utf-8", timeout=120)
  shown = []
  for session_turns in (["I lost my job today.", "I do not know what to do."],
                        ["My sister is visiting next week!", ""]):
    for text in session_turns:
      child.expect(r"Speaker \(\d/2\): ")
      child.sendline(text)
      if text:
        child.expect(r"Listener: ([^\r\n]*)\r\n  reward ([-+]\d\.\d+)")
        shown.append((child.match.group(1).strip(), float(child.match.group(2))))
  child.expect(pexpect.EOF)
  child.close()
  assert child.exitstatus == 0
  results = json.load(open(out / "multi_turn.json"))
  assert [len(s["turns"]) for s in results] == [2, 1]  # the empty line ended session 2
  turns = [t for s in results for t in s["turns"]]
  assert [(t["response"], round(t["reward"], 4)) for t in turns] == shown
  assert os.path.exists(out / "multi_turn.png")
