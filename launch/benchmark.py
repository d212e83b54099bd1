#!/usr/bin/env python
"""The one benchmark entry point; each mode prints figures and a final JSON line.

  python launch/benchmark.py --mode test --model GODEL_TINY --max_examples 512
  python launch/benchmark.py --mode generation --model GODEL_TINY --batch_size 32 --beam_width 4
  python launch/benchmark.py --mode sft --model GODEL_TINY --batch_size 8
  python launch/benchmark.py --mode classifiers
  python launch/benchmark.py --mode reward --model GODEL_TINY --batch_size 8
  python launch/benchmark.py --mode ppo --model DialoGPT_TINY --batch_size 8
  python launch/benchmark.py --mode dpo --model DialoGPT_TINY --batch_size 8
  python launch/benchmark.py --mode grpo --model GODEL_TINY --batch_size 8
  python launch/benchmark.py --mode tokenize --max_examples 5242 (the [tf] extra)

Comparisons with PyTorch run when torch is installed: same weights, same inputs (PyTorch padded
to each batch's longest, as its users pad), outputs asserted equal, equal repeats taken in
turn, median and range, threads pinned and printed.
"""

import os
import sys

from absl import app, flags

# The benchmarks are development tooling: they live in the checkout (benchmarks/), not in the
# installed package, so this launcher runs from a clone.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import BenchConfig  # noqa: E402  pylint: disable=wrong-import-position
from empathy_jax import launch_flags, settings  # noqa: E402  pylint: disable=wrong-import-position

settings.define_flags(BenchConfig)
flags.mark_flag_as_required("mode")
launch_flags.list_in_help()


def main(argv):
  del argv
  try:
    cfg = settings.from_flags(BenchConfig)
  except ValueError as e:
    launch_flags.fail(str(e))
  if cfg.mode == "test":
    from benchmarks import test_mode as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "generation":
    from benchmarks import generation as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "sft":
    from benchmarks import sft as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "reward":
    from benchmarks import reward as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "ppo":
    from benchmarks import ppo as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "dpo":
    from benchmarks import dpo as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "grpo":
    from benchmarks import grpo as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "tokenize":
    from benchmarks import tokenize as bench  # pylint: disable=import-outside-toplevel
  else:
    from benchmarks import classifiers as bench  # pylint: disable=import-outside-toplevel
  bench.run(cfg)


if __name__ == "__main__":
  app.run(main)
