"""DPO of GODEL_SMALL_ED on the reward dataset's pairwise ratings (train_dpo).

  python launch/train_dpo.py --config configs/dpo_godel_ed.py --output_dir runs/dpo
  python launch/train_dpo.py --config configs/dpo_godel_ed.py:tiny --output_dir runs/dpo_tiny
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config(experiments.DPO, variant, experiments.DPO_TINY)
