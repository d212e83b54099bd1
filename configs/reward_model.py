"""The reward model of the original's RLHF runs: GODEL (large) scored on the pairwise human
ratings of `datasets/reward_dataset` (train_reward_model).

  python launch/train_reward_model.py --config configs/reward_model.py --output_dir runs/reward
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config({**experiments.REWARD, "model": "GODEL_LARGE"}, variant,
                            {**experiments.REWARD_TINY, "model": "GODEL_TINY"})
