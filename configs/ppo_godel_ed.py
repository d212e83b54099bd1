"""PPO of the ED-fine-tuned GODEL against the reward model: the table's 'GODEL ED + RLHF'
(train_rlhf_pipeline). Set the two model folders:

  python launch/train_rlhf_pipeline.py --config configs/ppo_godel_ed.py \
      --pretrained_model_dir runs/sft_godel_ed/tensorboard_logs/version_0 \
      --reward_model_dir runs/reward/tensorboard_logs/version_0 --output_dir runs/ppo
"""

from empathy_jax import experiments


def get_config(variant: str = ""):
  return experiments.config(dict(experiments.PPO), variant, dict(experiments.PPO_TINY))
