#!/usr/bin/env python
"""Checks a dialogue or reward dataset folder before a long run.

  python launch/validate_dataset.py --dataset_dir datasets/empathetic_dialogues --model GODEL_TINY

Exits 0 with a per-split summary, or 1 listing every problem (file, index, reason).
"""

import sys

from absl import app, flags

from empathy_jax.data.validate import validate_dataset

_DATASET_DIR = flags.DEFINE_string("dataset_dir", None, "Dataset folder (train/val/test).",
                                   required=True)
_MODEL = flags.DEFINE_string("model", None, "Registry model whose tokenizer gives token "
                             "lengths and truncation counts (optional).")


def main(argv):
  del argv
  report = validate_dataset(_DATASET_DIR.value, _MODEL.value)
  print(report.format())
  sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
  app.run(main)
