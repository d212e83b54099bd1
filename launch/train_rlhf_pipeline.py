#!/usr/bin/env python
"""PPO of a fine-tuned dialogue policy against a reward model, with the original's flags.

  python launch/train_rlhf_pipeline.py --dataset_dir datasets/empathetic_dialogues \\
      --pretrained_model_dir runs/godel_tiny/tensorboard_logs/version_0 \\
      --reward_model_dir runs/reward_tiny/tensorboard_logs/version_0 \\
      --output_dir runs/ppo_tiny --max_epochs 1 --batch_size 8 --max_new_tokens 24 \\
      --max_train_examples 64 --max_val_examples 16 --kl_penalty 0.05
  python launch/train_rlhf_pipeline.py --config configs/ppo_godel_ed.py:tiny \\
      --reward_model_dir runs/reward_tiny/tensorboard_logs/version_0 --output_dir runs/ppo

The original README's command runs as written (its generation flags included):

  python launch/train_rlhf_pipeline.py --dataset_dir datasets/empathetic_dialogues \\
      --pretrained_model_dir SFT_RUN --reward_model_dir REWARD_RUN --output_dir runs/rlhf \\
      --max_epochs 5 --batch_size 8 --initial_lr 0.00001 --beam_width 1 --sample \\
      --top_p 0.9 --top_k 50

Rollouts sample from the current policy at --temperature, truncated by --top_k / --top_p;
the log-probs that enter the ratio are those of that truncated distribution (the reference's
are untruncated, so the KL stays finite). Greedy (--no_sample) and beam rollouts are refused:
they are not samples of a distribution. Writes OUT/tensorboard_logs/version_N/ (TensorBoard with
TRL's metric names; best/ = the policy with the highest greedy validation reward, or with
--recipe original the lowest val_loss; latest/; the resumable train state);
`launch/test.py --pretrained_model_dir OUT/tensorboard_logs/version_N` tests the best policy.
Re-running the same command after an interruption resumes it.
"""

from absl import app

from empathy_jax import launch_flags
from empathy_jax.training.ppo.trainer import PPORunConfig, train_rlhf_pipeline

main = launch_flags.trainer_main(
    PPORunConfig, train_rlhf_pipeline, "the policy to start from; also the frozen reference",
    step="iterations", dropout_help="Override the policy's dropout (rollouts and updates run "
    "without it; with --recipe original, with it, as the original's).")

if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
