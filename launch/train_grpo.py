#!/usr/bin/env python
"""GRPO or RLOO: trains a dialogue policy against a reward model with group-relative
advantages over several sampled responses per context (no critic).

  python launch/train_grpo.py --dataset_dir datasets/empathetic_dialogues \\
      --model GODEL_SMALL_ED --reward_model_dir runs/reward --output_dir runs/grpo \\
      --advantage grpo --group_size 4
  python launch/train_grpo.py --config configs/grpo_godel_ed.py:tiny \\
      --reward_model_dir runs/reward_tiny --output_dir runs/grpo_tiny

Writes OUT/tensorboard_logs/version_N/ (TensorBoard events under TRL's GRPO names: reward,
reward_std, kl, clip_ratio, completions/mean_length; best/ and latest/ dialogue-model folders
that test.py and interact.py load; the resumable train state) and prints one JSON line per
epoch (mean reward of greedy validation responses). Re-running the same command after an
interruption (even a kill) resumes it.
"""

from absl import app

from empathy_jax import launch_flags
from empathy_jax.training.grpo import GRPOConfig, train_grpo

main = launch_flags.trainer_main(GRPOConfig, train_grpo,
                                 "the policy to start from; also the reference",
                                 step="generations")

if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
