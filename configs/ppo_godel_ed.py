"""PPO of the ED-fine-tuned GODEL against the reward model: the table's 'GODEL ED + RLHF'
(train_rlhf_pipeline). Set the two model folders:

  python launch/train_rlhf_pipeline.py --config configs/ppo_godel_ed.py \
      --pretrained_model_dir runs/sft_godel_ed/tensorboard_logs/version_0 \
      --reward_model_dir runs/reward/tensorboard_logs/version_0 --output_dir runs/ppo

`:original` is the original's update as it ran (`--recipe original`, docs/differences.md), with
the sampling of the original README's command (top-k 50, top-p 0.9).
"""

import ml_collections

from empathy_jax import experiments


def get_config(variant: str = ""):
  if variant == "original":
    return ml_collections.ConfigDict({**experiments.PPO, "recipe": "original", "top_k": 50,
                                      "top_p": 0.9})
  return experiments.config(dict(experiments.PPO), variant, dict(experiments.PPO_TINY))
