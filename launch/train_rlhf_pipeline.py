#!/usr/bin/env python
"""PPO of a fine-tuned dialogue policy against a reward model, with the original's flags.

  python launch/train_rlhf_pipeline.py --dataset_dir datasets/empathetic_dialogues \
      --pretrained_model_dir runs/godel_tiny/tensorboard_logs/version_0 \
      --reward_model_dir runs/reward_tiny/tensorboard_logs/version_0 \
      --output_dir runs/ppo_tiny --max_epochs 1 --batch_size 8 --max_new_tokens 24 \
      --max_train_examples 64 --max_val_examples 16 --kl_penalty 0.05
  python launch/train_rlhf_pipeline.py --config configs/ppo_godel_ed.py:tiny \
      --reward_model_dir runs/reward_tiny/tensorboard_logs/version_0 --output_dir runs/ppo

The original README's command runs as written (its generation flags included):

  python launch/train_rlhf_pipeline.py --dataset_dir datasets/empathetic_dialogues \
      --pretrained_model_dir SFT_RUN --reward_model_dir REWARD_RUN --output_dir runs/rlhf \
      --max_epochs 5 --batch_size 8 --initial_lr 0.00001 --beam_width 1 --sample \
      --top_p 0.9 --top_k 50

Rollouts sample from the current policy at --temperature, truncated by --top_k / --top_p;
the log-probs that enter the ratio are those of that truncated distribution (the reference's
are untruncated, so the KL stays finite). Greedy (--no_sample) and beam rollouts are refused:
they are not samples of a distribution. Writes OUT/tensorboard_logs/version_N/ (TensorBoard with
TRL's metric names, best/ = the policy with the highest greedy validation reward, latest/, the
resumable train state); `launch/test.py --pretrained_model_dir OUT/tensorboard_logs/version_N`
tests the best policy. Re-running the same command after an interruption resumes it.
"""

import json
import sys

from absl import app, flags, logging

from empathy_jax import compilation, launch_flags
from empathy_jax.errors import CheckpointError, DatasetError, DivergedError
from empathy_jax.training.ppo.trainer import PPORunConfig, train_rlhf_pipeline

F = flags
F.DEFINE_string("dataset_dir", None, "Dialogue dataset folder (train/ and val/ contexts).")
F.DEFINE_string("output_dir", None, "Run folder root (tensorboard_logs/version_N).")
F.DEFINE_string("reward_model_dir", None, "Reward model: a run or folder of "
                "launch/train_reward_model.py, or an original reward .ckpt / run folder.")
F.DEFINE_string("model", None, "Registry model for the policy (e.g. GODEL_TINY).")
F.DEFINE_string("pretrained_model_dir", None, "Policy to start from (an SFT run, a Hugging "
                "Face directory, an original .ckpt); also the frozen reference.")
F.DEFINE_integer("max_epochs", 10, "Passes over the training contexts.")
F.DEFINE_integer("batch_size", 8, "Contexts (episodes) per rollout.")
F.DEFINE_float("initial_lr", 1e-5, "AdamW learning rate (linear decay over all updates).")
F.DEFINE_float("data_erasure_level", 0.3, "Fraction of instructions/knowledge erased.")
F.DEFINE_integer("max_new_tokens", 100, "Response tokens sampled per rollout.")
F.DEFINE_float("temperature", 1.0, "Sampling temperature of the rollouts (and of the ratio).")
F.DEFINE_integer("beam_width", 1, "The original's flag; PPO rollouts take 1 (one sampled "
                 "response per context).")
F.DEFINE_bool("sample", True, "The original's flag; PPO rollouts sample (--no_sample, greedy, "
              "is refused).")
F.DEFINE_integer("top_k", 0, "Top-k truncation of the rollouts' sampling (0: off); the "
                 "log-probs of the ratio are those of the truncated distribution.")
F.DEFINE_float("top_p", 1.0, "Nucleus truncation of the rollouts' sampling (1: off); the "
               "log-probs of the ratio are those of the truncated distribution.")
F.DEFINE_float("length_alpha", None, "The original's beam length penalty; no effect on one "
               "sampled response.")
F.DEFINE_float("clip_epsilon", 0.2, "PPO ratio clipping.")
F.DEFINE_float("kl_penalty", 0.0, "KL coefficient (the initial one with --kl_target).")
F.DEFINE_float("gamma", 0.99, "Discount.")
F.DEFINE_float("lam", 0.95, "GAE lambda.")
F.DEFINE_float("vf_coeff", 1.0, "Value-loss coefficient.")
F.DEFINE_float("entropy_coeff", 0.01, "Entropy-bonus coefficient.")
F.DEFINE_integer("ppo_epochs", 4, "Passes over each rollout (TRL's num_ppo_epochs).")
F.DEFINE_integer("num_minibatches", 1, "Minibatches per pass (updates per pass).")
F.DEFINE_enum("kl_estimator", "k1", ["k1", "k3"], "Per-token KL estimator.")
F.DEFINE_float("kl_target", 0.0, "Adaptive KL controller's target (0: fixed --kl_penalty).")
F.DEFINE_integer("kl_horizon", 10000, "Adaptive KL controller's horizon (episodes).")
F.DEFINE_float("value_clip", 0.2, "Value-loss clipping around the rollout's values (0: off).")
F.DEFINE_float("missing_eos_penalty", 0.0, "Subtracted from the score of a response without "
               "EOS.")
F.DEFINE_bool("whiten_rewards", False, "Whiten per-token rewards (TRL's whiten_rewards).")
F.DEFINE_enum("ratio_against", "rollout", ["rollout", "reference"], "Policy ratio against the "
              "rollout policy (correct) or the frozen reference (the original's, for "
              "comparisons).")
F.DEFINE_enum("reference_dtype", "float32", ["float32", "bfloat16"], "Storage dtype of the "
              "frozen reference's weights (bfloat16 halves its memory; layers compute in "
              "--dtype).")
F.DEFINE_enum("critic", "separate", ["separate", "shared"], "separate: its own backbone "
              "(from the reward model's when it has the policy's architecture, else a copy of "
              "the policy); shared: a value head on the policy.")
F.DEFINE_enum("recipe", "default", ["default", "original"], "original: the original's update "
              "as it ran (one step per rollout batch, ratio against the reference, advantages "
              "and returns = whitened advantages + values inside the step, a value head with "
              "dropout on the policy, log-probs of the whole distribution, the LR decayed per "
              "epoch; docs/differences.md). Flags it fixes may be left out.")
F.DEFINE_float("value_head_dropout", 0.0, "Dropout before the value head (--recipe original: "
               "0.5, the original's nn.Dropout()).")
F.DEFINE_enum("value_head_init", "zeros", ["zeros", "torch"], "Value head start: zeros "
              "(TRL's) or torch.nn.Linear's uniform init (the original's).")
F.DEFINE_integer("max_train_examples", None, "Use only the first N train contexts.")
F.DEFINE_integer("max_val_examples", None, "Use only the first N val contexts.")
F.DEFINE_float("weight_decay", 0.01, "AdamW weight decay.")
F.DEFINE_float("clip_norm", 0.0, "Global gradient-norm clipping (0: off).")
F.DEFINE_integer("seed", 0, "Seed for data order and sampling.")
_MESH, _CACHE = launch_flags.define_run_flags(
    1, 50, dropout_help="Override the policy's dropout (rollouts and updates run without it).",
    step="iterations")
F.adopt_module_key_flags(launch_flags)


def main(argv):
  del argv
  _CACHE()
  cfg = launch_flags.train_config(PPORunConfig, _MESH)
  logging.set_verbosity(logging.WARNING)
  try:
    summary = train_rlhf_pipeline(cfg)  # checks every input before heavy work
  except (DatasetError, CheckpointError, ValueError, DivergedError) as e:
    launch_flags.fail(str(e))
  print(json.dumps(summary, indent=2))
  print(compilation.summary(), file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
