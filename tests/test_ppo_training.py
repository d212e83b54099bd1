"""PPO on the trainer core, through the launcher: a small DialoGPT-format policy against a
reward model on the same backbone (scored in the graph, no text round trip). The run on 8
simulated devices gives the numbers of the run on one device; a run SIGKILLed at an unplanned
moment resumes to the uninterrupted result, bit for bit; the best policy is a dialogue model
that loads for test.py. (GODEL policies and the text round trip ran by hand; their programs are
the costliest to compile in this suite.)"""

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

import hf_fixtures as hf
from kills import kill_after_first_checkpoint, one_device_env
from conftest import REPO
from empathy_jax.models import model_dir, reward_model
from empathy_jax.models.loading import load_model
from empathy_jax.training.metrics_log import read_scalars
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.data.pipeline import tokenize_split
from empathy_jax.training.ppo import trainer
from empathy_jax.training.ppo.trainer import PPORunConfig, train_rlhf_pipeline

LAUNCHER = os.path.join(REPO, "launch", "train_rlhf_pipeline.py")
# 16 contexts / 8 = 2 iterations an epoch; a train-state checkpoint after every iteration.
SETTINGS = dict(max_epochs=2, batch_size=8, max_train_examples=16, max_val_examples=8,
                max_new_tokens=4, initial_lr=1e-4, kl_penalty=0.05, kl_target=1.0,
                ppo_epochs=2, num_minibatches=2, checkpoint_interval=1, log_interval=1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  root = tmp_path_factory.mktemp("ppo_models")
  policy = str(root / "policy")
  hf.save_torch_model("dialogpt", policy)  # 2 layers: quick to compile
  rm = str(root / "rm")
  reward_model.save(reward_model.new_reward_model(load_model(policy), seed=3), rm)
  return policy, rm


def _command(models, dataset, out_dir):
  policy, rm = models
  flags = [f"--{k}={v}" for k, v in SETTINGS.items()]
  return [sys.executable, LAUNCHER, *flags, "--pretrained_model_dir", policy,
          "--reward_model_dir", rm, "--dataset_dir", dataset, "--output_dir", str(out_dir)]



def _run(models, dataset, out_dir):
  return subprocess.run(_command(models, dataset, out_dir), capture_output=True, text=True,
                        cwd=REPO, env=one_device_env(), timeout=600)


@pytest.fixture(scope="module")
def one_device(models, short_dialogues, tmp_path_factory):
  """The launcher's uninterrupted run on one device."""
  out = tmp_path_factory.mktemp("ppo_one_device")
  done = _run(models, short_dialogues, out)
  assert done.returncode == 0, done.stderr[-3000:]
  return out / "tensorboard_logs" / "version_0"


def _history(run):
  return json.load(open(os.path.join(run, "FINISHED")))["history"]


def test_ppo_on_8_devices_equals_one_device_and_saves_a_loadable_policy(
    models, short_dialogues, one_device, tmp_path):
  policy, rm = models
  cfg = PPORunConfig(dataset_dir=short_dialogues, output_dir=str(tmp_path / "ppo"),
                     reward_model_dir=rm, pretrained_model_dir=policy, **SETTINGS)
  assert jax.device_count() == 8
  summary = train_rlhf_pipeline(cfg)
  history = summary["history"]
  assert [r["epoch"] for r in history] == [1, 2] and all(np.isfinite(r["val_reward"])
                                                        for r in history)
  one = _history(one_device)
  np.testing.assert_allclose([r["val_reward"] for r in history], [r["val_reward"] for r in one],
                             rtol=1e-5, atol=1e-6)
  eight = load_model(os.path.join(summary["run_dir"], "latest"))
  single = load_model(str(one_device / "latest"))
  start = load_model(policy)
  moved = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(eight.params),
                                                          jax.tree.leaves(start.params)))
  assert moved > 1e-5  # the policy was updated ...
  for a, b in zip(jax.tree.leaves(eight.params), jax.tree.leaves(single.params)):
    np.testing.assert_allclose(a, b, atol=moved * 1e-3)  # ... the same way on 1 and 8 devices

  best = os.path.join(summary["run_dir"], "best")
  info = json.load(open(os.path.join(best, model_dir.INFO)))
  assert info["family"] == "dialogpt" and not info["extra"]  # a plain dialogue model
  # TRL's metric names, episodes/s and the time split, in TensorBoard's scalars.
  scalars = read_scalars(summary["run_dir"])
  for key in ("objective/kl", "objective/entropy", "objective/scores", "objective/rlhf_reward",
              "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg",
              "val/clipfrac_avg", "val/ratio", "val/num_eos_tokens", "time/rollout",
              "time/scoring", "time/update"):
    assert np.isfinite([v for _, v in scalars[f"train_{key}"]]).all(), key
  assert all(v > 0 for _, v in scalars["episodes_per_second"])


def _resumed_from(text):
  m = re.search(r"resuming .* from step (\d+)", text)
  return None if m is None else int(m.group(1))


def test_sigkilled_ppo_resumes_to_the_uninterrupted_result(models, short_dialogues, one_device,
                                                          tmp_path):
  out = tmp_path / "killed"
  # SIGKILLed at a moment nobody chose: at random within 0.5 s after its first train-state
  # checkpoint is committed; the rerun must resume from a checkpoint, not start over.
  kill_after_first_checkpoint(_command(models, short_dialogues, out), out / "tensorboard_logs" / "version_0",
                              cwd=REPO, env=one_device_env())
  last = _run(models, short_dialogues, out)
  assert last.returncode == 0, last.stderr[-3000:]
  assert _resumed_from(last.stderr) in (1, 2, 3), last.stderr[-2000:]

  run = out / "tensorboard_logs" / "version_0"
  for folder in ("latest", "best"):
    a, b = load_model(str(one_device / folder)), load_model(str(run / folder))
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
      np.testing.assert_array_equal(x, y)  # bit-identical on CPU
  assert _history(one_device) == _history(run)


def test_recipe_original_keeps_the_policy_of_lowest_val_loss(models, short_dialogues, tmp_path,
                                                             monkeypatch):
  """`--recipe original`: every epoch's validation reports the original's `val_loss` (over two
  batches in the dataset's order) beside `val_reward`, and `best/` is the epoch of the lowest
  `val_loss` (the checkpoint the original's test-time loader picks), not of the highest
  reward."""
  policy, rm = models
  settings = dict(max_epochs=3, batch_size=8, max_train_examples=24, max_val_examples=16,
                  max_new_tokens=4, initial_lr=3e-3, kl_penalty=0.05, checkpoint_interval=1)
  cfg = PPORunConfig(dataset_dir=short_dialogues, output_dir=str(tmp_path / "ppo"),
                     reward_model_dir=rm, pretrained_model_dir=policy, recipe="original",
                     **settings)
  # The validation batches, seen as they are made: the original's loader keeps the dataset's
  # order (its loss whitens per batch, so the batches' make-up matters).
  made, real_batcher = [], trainer.make_batcher

  def watched(*args, **kwargs):
    batcher = real_batcher(*args, **kwargs)
    if not kwargs.get("group_by_length", True):
      made.append(batcher)
    return batcher

  monkeypatch.setattr(trainer, "make_batcher", watched)
  summary = train_rlhf_pipeline(cfg)
  assert len(made) == 3  # one validation per epoch
  val = load_dialogue_split(split_dir(short_dialogues, "val"), 0.3).select(range(16))
  rows = [list(b.example_index_B) for b in made[0].batches(tokenize_split(val, load_model(
      policy).fmt))]
  assert rows == [list(range(8)), list(range(8, 16))]
  history = summary["history"]
  losses = [r["val_loss"] for r in history]
  assert np.isfinite(losses).all() and len(set(losses)) == 3  # the policy moved each epoch
  lowest = int(np.argmin(losses))
  assert summary["best_val_loss"] == losses[lowest]
  assert "best_val_reward" not in summary
  info = json.load(open(os.path.join(summary["run_dir"], "best", model_dir.INFO)))
  assert info["metadata"]["epoch"] == history[lowest]["epoch"], (info["metadata"], history)
