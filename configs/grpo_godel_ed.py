"""GRPO (or RLOO with --advantage rloo) of GODEL_SMALL_ED against a reward model (train_grpo).

  python launch/train_grpo.py --config configs/grpo_godel_ed.py \
      --reward_model_dir runs/reward --output_dir runs/grpo
  python launch/train_grpo.py --config configs/grpo_godel_ed.py:tiny \
      --reward_model_dir runs/reward_tiny --output_dir runs/grpo_tiny
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config(experiments.GRPO, variant, experiments.GRPO_TINY)
