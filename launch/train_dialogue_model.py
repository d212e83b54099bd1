#!/usr/bin/env python
"""Supervised fine-tuning of a dialogue model, with the original's flags.

  python launch/train_dialogue_model.py --dataset_dir datasets/empathetic_dialogues \\
      --model GODEL_TINY --output_dir runs/godel_tiny --max_epochs 5 --batch_size 8 \\
      --initial_lr 1e-5
  python launch/train_dialogue_model.py --config configs/sft_godel_ed.py:tiny \\
      --output_dir runs/godel_tiny --max_epochs 1

Writes OUT/tensorboard_logs/version_N/ (TensorBoard events, best/ and latest/ model folders,
the resumable train state). Re-running the same command after an interruption (even a kill)
resumes it; `--pretrained_model_dir OUT/tensorboard_logs/version_N` then loads the best model.
"""

from absl import app

from empathy_jax import launch_flags
from empathy_jax.data.tfdata import InputPipelineError
from empathy_jax.training.sft import SFTConfig, train_dialogue_model


def _printable(summary: dict) -> dict:
  """The summary without the final parameters."""
  return {k: v for k, v in summary.items() if k != "params"}


main = launch_flags.trainer_main(SFTConfig, train_dialogue_model, "the model to fine-tune",
                                 errors=(ImportError, InputPipelineError),
                                 summarize=_printable)

if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
