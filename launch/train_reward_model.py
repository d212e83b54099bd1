#!/usr/bin/env python
"""Trains a reward model on pairwise human ratings, with the original's flags.

  python launch/train_reward_model.py --dataset_dir datasets/reward_dataset \\
      --model GODEL_TINY --output_dir runs/reward_tiny --batch_size 4 --val_fraction 0.2
  python launch/train_reward_model.py --config configs/reward_model.py:tiny \\
      --output_dir runs/reward_tiny

The dataset folder holds train/{contexts,responses,ratings}.json. Writes
OUT/tensorboard_logs/version_N/ (TensorBoard events, best/ and latest/ reward-model folders with
their mean_offset, the resumable train state) and prints one JSON line per epoch (validation
loss, accuracy over non-tie pairs, tie MSE, reward mean/std). Re-running the same command
after an interruption (even a kill) resumes it. Use the result with
`launch/test.py --reward_model_dir OUT/tensorboard_logs/version_N`.
"""

from absl import app

from empathy_jax import launch_flags
from empathy_jax.training.reward_trainer import RewardConfig, train_reward_model


def _printable(summary: dict) -> dict:
  """The summary with the reward model's mean_offset in place of the model."""
  reward = summary.pop("reward_model")
  return {**summary, "mean_offset": reward.mean_offset}


main = launch_flags.trainer_main(RewardConfig, train_reward_model,
                                 "the backbone of the reward model",
                                 dropout_help="Override the backbone's own dropout.",
                                 summarize=_printable)

if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
