#!/usr/bin/env python
"""Supervised fine-tuning of a dialogue model, with the original's flags.

  python launch/train_dialogue_model.py --dataset_dir datasets/empathetic_dialogues \
      --model GODEL_TINY --output_dir runs/godel_tiny --max_epochs 5 --batch_size 8 \
      --initial_lr 1e-5
  python launch/train_dialogue_model.py --config configs/sft_godel_ed.py:tiny \
      --output_dir runs/godel_tiny --max_epochs 1

Writes OUT/tensorboard_logs/version_N/ (TensorBoard events, best/ and latest/ model folders,
the resumable train state). Re-running the same command after an interruption (even a kill)
resumes it; `--pretrained_model_dir OUT/tensorboard_logs/version_N` then loads the best model.
"""

import json
import sys

from absl import app, flags, logging

from empathy_jax import compilation, launch_flags, settings
from empathy_jax.data.tfdata import InputPipelineError
from empathy_jax.errors import CheckpointError, DatasetError, DivergedError
from empathy_jax.training.sft import SFTConfig, train_dialogue_model

F = flags
launch_flags.define_model_flags("the model to fine-tune")
settings.define_flags(SFTConfig)  # every SFT setting, from its field
_MESH, _CACHE = launch_flags.define_run_flags(10, 500)
F.adopt_module_key_flags(launch_flags)  # list the shared flags in --help
F.adopt_module_key_flags(settings)


def main(argv):
  del argv
  _CACHE()
  cfg = launch_flags.train_config(SFTConfig, _MESH)
  logging.set_verbosity(logging.WARNING)  # orbax is chatty at INFO; progress has its own bar
  try:
    summary = train_dialogue_model(cfg)  # checks every input before heavy work
  except (DatasetError, CheckpointError, ImportError, InputPipelineError, DivergedError) as e:
    launch_flags.fail(str(e))
  summary.pop("params")
  print(json.dumps(summary, indent=2))
  print(compilation.summary(), file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
