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

from empathy_jax import compilation, launch_flags
from empathy_jax.data.tfdata import InputPipelineError
from empathy_jax.errors import CheckpointError, DatasetError, DivergedError
from empathy_jax.training.sft import SFTConfig, train_dialogue_model

F = flags
F.DEFINE_string("dataset_dir", None, "Dialogue dataset folder (train/val/test).")
F.DEFINE_string("output_dir", None, "Run folder root (tensorboard_logs/version_N).")
F.DEFINE_string("model", None, "Registry model to start from (e.g. GODEL_TINY).")
F.DEFINE_string("pretrained_model_dir", None, "Checkpoint to continue from: an empathy-jax "
                "run/model folder, a Hugging Face directory or hub name, or an original "
                "Lightning .ckpt / run folder.")
F.DEFINE_integer("max_epochs", 10, "Training epochs.")
F.DEFINE_integer("batch_size", 8, "Global batch size.")
F.DEFINE_float("data_erasure_level", 0.3, "Fraction of instructions/knowledge erased "
               "(original's seeded selection).")
F.DEFINE_float("initial_lr", 1e-5, "AdamW learning rate, decayed linearly to 0.")
F.DEFINE_enum("lr_schedule", "epoch", ["epoch", "step"], "Decay per epoch (the original) or "
              "per step.")
F.DEFINE_integer("warmup_steps", 0, "Linear warmup steps (with --lr_schedule=step).")
F.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (torch's default).")
F.DEFINE_float("clip_norm", 0.0, "Global gradient-norm clipping (0: off).")
F.DEFINE_integer("grad_accum", 1, "Micro-batches per step (batch_size divisible).")
F.DEFINE_integer("seed", 0, "Seed for data order, dropout and random init.")
F.DEFINE_integer("max_train_examples", None, "Use only the first N train rows.")
F.DEFINE_integer("max_val_examples", None, "Use only the first N val rows.")
F.DEFINE_integer("num_val_samples", 3, "Validation responses logged per epoch.")
F.DEFINE_integer("sample_max_new_tokens", 40, "New tokens of each logged validation sample.")
F.DEFINE_enum("input_pipeline", "python", ["python", "tfdata"], "Tokenize with transformers "
              "(python) or with tf.data and in-graph SentencePiece (tfdata, GODEL family; "
              "pip install 'empathy-jax[tf]'): the same ids.")
_MESH, _CACHE = launch_flags.define_run_flags(10, 500)
F.adopt_module_key_flags(launch_flags)  # list the shared flags in --help


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
