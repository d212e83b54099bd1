#!/usr/bin/env python
"""Trains a reward model on pairwise human ratings, with the original's flags.

  python launch/train_reward_model.py --dataset_dir datasets/reward_dataset \
      --model GODEL_TINY --output_dir runs/reward_tiny --batch_size 4 --val_fraction 0.2
  python launch/train_reward_model.py --config configs/reward_model.py:tiny \
      --output_dir runs/reward_tiny

The dataset folder holds train/{contexts,responses,ratings}.json. Writes
OUT/tensorboard_logs/version_N/ (TensorBoard events, best/ and latest/ reward-model folders with
their mean_offset, the resumable train state) and prints one JSON line per epoch (validation
loss, accuracy over non-tie pairs, tie MSE, reward mean/std). Re-running the same command
after an interruption (even a kill) resumes it. Use the result with
`launch/test.py --reward_model_dir OUT/tensorboard_logs/version_N`.
"""

import json
import sys

from absl import app, flags, logging

from empathy_jax import compilation, launch_flags
from empathy_jax.errors import CheckpointError, DatasetError, DivergedError
from empathy_jax.training.reward_trainer import LOSSES, RewardConfig, train_reward_model

F = flags
F.DEFINE_string("dataset_dir", None, "Reward dataset folder (train/contexts.json, "
                "responses.json, ratings.json).")
F.DEFINE_string("output_dir", None, "Run folder root (tensorboard_logs/version_N).")
F.DEFINE_string("model", None, "Registry model for the backbone (e.g. GODEL_TINY).")
F.DEFINE_string("pretrained_model_dir", None, "Backbone to start from: an empathy-jax run or "
                "model folder (e.g. an SFT run), a Hugging Face directory or hub name, or an "
                "original Lightning .ckpt / run folder.")
F.DEFINE_integer("max_epochs", 1, "Training epochs.")
F.DEFINE_float("initial_lr", 1e-5, "AdamW learning rate, halved every epoch.")
F.DEFINE_integer("batch_size", 1, "Contexts per step, each with all its responses and ratings "
                 "(the original: 1).")
F.DEFINE_float("val_fraction", 0.0, "Share of contexts held out for validation, chosen by "
               "--seed; 0 validates on the training contexts as the original.")
F.DEFINE_float("dropout", 0.6, "Dropout before the reward head (the original's 0.6).")
F.DEFINE_enum("loss", "original", list(LOSSES), "original: the graded pairwise loss (ties: "
              "squared difference; else -sqrt|factor| log sigmoid(margin)); bradley_terry: "
              "-log sigmoid(r_better - r_worse - margin) over non-tie pairs, as TRL.")
F.DEFINE_float("margin", 0.0, "Bradley-Terry margin (with --loss=bradley_terry).")
F.DEFINE_float("center_rewards_coefficient", 0.0, "Reward centring coefficient, TRL's "
               "(with --loss=bradley_terry; TRL suggests 0.01).")
F.DEFINE_integer("max_contexts", None, "Use only the first N contexts.")
F.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (torch's default).")
F.DEFINE_float("clip_norm", 0.0, "Global gradient-norm clipping (0: off).")
F.DEFINE_integer("seed", 0, "Seed for the head, data order, held-out split and dropout.")
F.DEFINE_integer("num_val_samples", 2, "Validation contexts whose rewards are logged per epoch.")
_MESH, _CACHE = launch_flags.define_run_flags(
    10, 500, dropout_help="Override the backbone's own dropout.")
F.adopt_module_key_flags(launch_flags)


def main(argv):
  del argv
  _CACHE()
  cfg = launch_flags.train_config(RewardConfig, _MESH)
  logging.set_verbosity(logging.WARNING)
  try:
    summary = train_reward_model(cfg)  # checks every input before heavy work
  except (DatasetError, CheckpointError, DivergedError) as e:
    launch_flags.fail(str(e))
  reward = summary.pop("reward_model")
  summary["mean_offset"] = reward.mean_offset
  print(json.dumps(summary, indent=2))
  print(compilation.summary(), file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
