#!/usr/bin/env python
"""DPO: trains a dialogue policy directly on the reward dataset's pairwise ratings (no reward
model, no rollouts).

  python launch/train_dpo.py --dataset_dir datasets/reward_dataset --model GODEL_SMALL_ED \\
      --output_dir runs/dpo --beta 0.1 --max_epochs 3
  python launch/train_dpo.py --config configs/dpo_godel_ed.py:tiny --output_dir runs/dpo_tiny

Writes OUT/tensorboard_logs/version_N/ (TensorBoard events under TRL's names, best/ and latest/
dialogue-model folders that test.py and interact.py load, the resumable train state) and prints
one JSON line per epoch (held-out loss, implicit-reward accuracy and margins). Re-running the
same command after an interruption (even a kill) resumes it.
"""

from absl import app

from empathy_jax import launch_flags
from empathy_jax.training.dpo import DPOConfig, train_dpo

main = launch_flags.trainer_main(DPOConfig, train_dpo,
                                 "the policy to start from; also the reference")

if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
