"""Reward-model training end to end: a preference a tiny model can learn is learnt (held-out
accuracy), the shipped dataset trains on GODEL and DialoGPT, and a SIGKILLed launcher rerun
ends with the parameters and mean_offset of an uninterrupted run."""

import json
import os
import re
import sys

import jax
import numpy as np
import pytest

import hf_fixtures as hf
from kills import kill_after_first_checkpoint, one_device_env, run_one_device
from preferences import WORD, synthetic_preference as _synthetic_preference

from conftest import REPO, REWARD_DIR
from empathy_jax.models import model_dir, reward_model
from empathy_jax.training.reward_trainer import RewardConfig, split_contexts, train_reward_model

LAUNCHER = os.path.join(REPO, "launch", "train_reward_model.py")


def _small_godel(tmp_path):
  """A 2+2-layer T5 in GODEL's format and tokenizer, as a Hugging Face folder (quicker to
  compile than GODEL_TINY's 4+4 layers)."""
  hf.save_torch_model("godel", str(tmp_path / "t5"))
  return str(tmp_path / "t5")


def test_a_learnable_preference_is_learnt_on_held_out_contexts(tmp_path):
  data = _synthetic_preference(str(tmp_path / "data"))
  cfg = RewardConfig(dataset_dir=data, output_dir=str(tmp_path / "out"),
                     pretrained_model_dir=_small_godel(tmp_path),
                     batch_size=4, max_epochs=2, initial_lr=3e-3, val_fraction=0.25,
                     dropout=0.1, log_interval=3, num_val_samples=1)
  summary = train_reward_model(cfg)
  history = summary["history"]
  assert history[-1]["val_loss"] < history[0]["val_loss"]
  assert history[-1]["val_accuracy"] >= 0.8, history  # chance is 0.5
  # The held-out rewards separate the two kinds of response; mean_offset centres them.
  reward = reward_model.load(os.path.join(summary["run_dir"], "latest"))
  assert reward.mean_offset == pytest.approx(history[-1]["val_reward_mean"], abs=1e-6)
  split = json.load(open(os.path.join(data, "train", "contexts.json")))
  responses = json.load(open(os.path.join(data, "train", "responses.json")))
  val = split_contexts(len(split), 0.25, seed=0)[1].tolist()
  scorer = reward_model.RewardScorer(reward)
  rewards = scorer([split[i] for i in val for _ in range(4)],
                   [r for i in val for r in responses[i]]).reshape(len(val), 4)
  has_word = np.asarray([[WORD in r for r in responses[i]] for i in val])
  assert rewards[has_word].mean() > rewards[~has_word].mean()


def test_shipped_dataset_trains_a_godel_reward_model(tmp_path):
  # 12 training contexts in one step of 16 rows, 4 held out: one train and one eval program.
  cfg = RewardConfig(dataset_dir=REWARD_DIR, output_dir=str(tmp_path / "out"),
                     pretrained_model_dir=_small_godel(tmp_path),
                     batch_size=16, max_contexts=16, val_fraction=0.25, initial_lr=1e-4)
  summary = train_reward_model(cfg)
  (record,) = summary["history"]
  for key in ("val_loss", "val_accuracy", "val_tie_mse", "val_reward_mean", "val_reward_std"):
    assert np.isfinite(record[key]), record
  assert 0.0 <= record["val_accuracy"] <= 1.0
  info = json.load(open(os.path.join(summary["run_dir"], "best", model_dir.INFO)))
  assert info["extra"] == ["mean_offset", "reward_head"]
  assert info["metadata"]["mean_offset"] == pytest.approx(record["val_reward_mean"])


# -- kills --------------------------------------------------------------------------------------

ARGS = ["--max_epochs", "2", "--batch_size", "4",
        "--max_contexts", "20", "--val_fraction", "0.2", "--checkpoint_interval", "3",
        "--log_interval", "2", "--initial_lr", "1e-4", "--num_val_samples", "1"]


def _command(out_dir, start):
  return [sys.executable, LAUNCHER, *ARGS, "--pretrained_model_dir", str(start), "--dataset_dir",
          REWARD_DIR, "--output_dir", str(out_dir)]


_env = one_device_env


def _run(out_dir, start, kill_at=None):
  return run_one_device(_command(out_dir, start), REPO, kill_at)


def _resumed_from(text):
  m = re.search(r"resuming .* from step (\d+)", text)
  return None if m is None else int(m.group(1))


def test_sigkilled_reward_training_resumes_to_the_uninterrupted_result(tmp_path):
  start = tmp_path / "start"
  hf.save_torch_model("dialogpt", str(start))  # a 2-layer backbone: quick to compile
  whole = _run(tmp_path / "whole", start)
  assert whole.returncode == 0, whole.stderr[-3000:]
  epochs = [json.loads(line) for line in whole.stdout.splitlines() if line.startswith('{"epoch"')]
  assert [e["epoch"] for e in epochs] == [1, 2] and "val_accuracy" in epochs[0]

  out = tmp_path / "killed"
  # SIGKILLed at a moment nobody chose: at random within 0.5 s after its first train-state
  # checkpoint is committed (16 training contexts / 4 = 4 steps an epoch, checkpoints at
  # steps 3 and 4); the rerun must resume from a checkpoint, not start over.
  kill_after_first_checkpoint(_command(out, start), out / "tensorboard_logs" / "version_0",
                              cwd=REPO, env=_env())
  last = _run(out, start)
  assert last.returncode == 0, last.stderr[-3000:]
  assert _resumed_from(last.stderr) in (3, 4, 5, 6, 7), last.stderr[-2000:]

  run = lambda root: root / "tensorboard_logs" / "version_0"
  for folder in ("latest", "best"):
    a, b = (reward_model.load(str(run(root) / folder)) for root in (tmp_path / "whole", out))
    assert a.mean_offset == b.mean_offset
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
      np.testing.assert_array_equal(x, y)  # bit-identical on CPU
  history = lambda root: json.load(open(run(root) / "FINISHED"))["history"]
  assert history(tmp_path / "whole") == history(out)
