#!/usr/bin/env python
"""The main job on a fresh machine: fine-tune GODEL_TINY on a slice of EmpatheticDialogues and
test it, printing the metrics (a few minutes on a CPU, nothing downloaded).

  python launch/quickstart.py [--output_dir runs/quickstart]
"""

import dataclasses

import sys

from absl import app, flags, logging

from empathy_jax import compilation, launch_flags
from empathy_jax.quickstart import QuickstartConfig, run_quickstart

_OUTPUT = flags.DEFINE_string("output_dir", QuickstartConfig.output_dir, "Run folder root.")
_DATASET = flags.DEFINE_string("dataset_dir", QuickstartConfig.dataset_dir, "Dataset folder.")
_CACHE = launch_flags.define_compilation_cache_flag()


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  _CACHE()
  run_quickstart(dataclasses.replace(QuickstartConfig(), output_dir=_OUTPUT.value,
                                     dataset_dir=_DATASET.value))
  print(compilation.summary(), file=sys.stderr)


if __name__ == "__main__":
  app.run(main)
