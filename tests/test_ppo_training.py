"""PPO on the trainer core, end to end on 8 simulated devices: a tiny DialoGPT policy against a
DialoGPT reward model (scored in the graph, no text round trip), validation reward per epoch,
the best policy saved as a dialogue model that loads for test.py. (GODEL policies and the text
round trip ran by hand; their programs are the costliest to compile in this suite.)"""

import json
import os

import jax
import numpy as np

from empathy_jax.models import model_dir, reward_model
from empathy_jax.models.loading import load_model
from empathy_jax.training.ppo.trainer import PPORunConfig, train_rlhf_pipeline


def test_ppo_runs_end_to_end_and_saves_a_loadable_policy(tmp_path, short_dialogues):
  rm_dir = str(tmp_path / "rm")
  reward_model.save(reward_model.new_reward_model(load_model("DialoGPT_TINY"), seed=3), rm_dir)
  cfg = PPORunConfig(dataset_dir=short_dialogues, output_dir=str(tmp_path / "ppo"),
                     reward_model_dir=rm_dir, model="DialoGPT_TINY", max_epochs=1,
                     batch_size=8, max_train_examples=8, max_val_examples=8, max_new_tokens=3,
                     initial_lr=1e-4, kl_penalty=0.05, kl_target=1.0)
  summary = train_rlhf_pipeline(cfg)
  (record,) = summary["history"]
  assert np.isfinite(record["val_reward"]) and record["best"]
  best = os.path.join(summary["run_dir"], "best")
  info = json.load(open(os.path.join(best, model_dir.INFO)))
  assert info["family"] == "dialogpt" and not info["extra"]  # a plain dialogue model
  policy = load_model(summary["run_dir"])
  start = load_model("DialoGPT_TINY")
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(policy.params),
                                                jax.tree.leaves(start.params))]
  assert max(moved) > 0  # the policy was updated
