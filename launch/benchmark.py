#!/usr/bin/env python
"""The one benchmark entry point; each mode prints figures and a final JSON line.

  python launch/benchmark.py --mode test --model GODEL_TINY --max_examples 512
  python launch/benchmark.py --mode generation --model GODEL_TINY --batch_size 32 --beam_width 4
  python launch/benchmark.py --mode sft --model GODEL_TINY --batch_size 8
  python launch/benchmark.py --mode classifiers
  python launch/benchmark.py --mode reward --model GODEL_TINY --batch_size 8
  python launch/benchmark.py --mode ppo --model DialoGPT_TINY --batch_size 8
  python launch/benchmark.py --mode tokenize --max_examples 5242 (the [tf] extra)

Comparisons with PyTorch run when torch is installed: same weights, same inputs (PyTorch padded
to each batch's longest, as its users pad), outputs asserted equal, equal repeats taken in
turn, median and range, threads pinned and printed.
"""

from absl import app, flags

from empathy_jax.benchmarks.common import BenchConfig

MODES = ("test", "generation", "sft", "classifiers", "reward", "ppo", "tokenize")
_MODE = flags.DEFINE_enum("mode", None, list(MODES), "What to measure: test = the whole "
                          "test.py process vs the original's loop; generation = tokens/s; "
                          "sft = train steps; classifiers = the metric classifiers; "
                          "reward = reward-model train steps (rated pairs/s); ppo = one PPO "
                          "iteration (episodes/s, rollout/scoring/update split); tokenize = "
                          "the tf.data input path vs the default tokenizer (examples/s).",
                          required=True)
_MODEL = flags.DEFINE_string("model", "GODEL_TINY", "Registry model (or checkpoint path).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch size (default: 32 for test and "
                              "generation, 8 for sft, reward and ppo, 32 for classifiers).")
_BEAMS = flags.DEFINE_integer("beam_width", 1, "Beams for --mode generation.")
_NEW = flags.DEFINE_integer("max_new_tokens", 32, "New tokens for --mode test, generation "
                            "and ppo.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repetitions of each side, interleaved "
                                 "(median and range are reported).")
_TORCH = flags.DEFINE_bool("torch", True, "Also measure the PyTorch reference.")
_EXAMPLES = flags.DEFINE_integer("max_examples", 512, "Test rows for --mode test; contexts "
                                 "for --mode reward.")
_DATASET = flags.DEFINE_string("dataset_dir", "datasets/empathetic_dialogues",
                               "Dataset whose test split gives the inputs.")


def main(argv):
  del argv
  default_batch = {"test": 32, "generation": 32, "sft": 8, "classifiers": 32,
                   "reward": 8, "ppo": 8, "tokenize": 512}[_MODE.value]
  cfg = BenchConfig(mode=_MODE.value, model=_MODEL.value,
                    batch_size=_BATCH.value or default_batch, beam_width=_BEAMS.value,
                    max_new_tokens=_NEW.value, repeats=_REPEATS.value,
                    dataset_dir=_DATASET.value, torch=_TORCH.value,
                    max_examples=_EXAMPLES.value)
  if cfg.mode == "test":
    from empathy_jax.benchmarks import test_mode as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "generation":
    from empathy_jax.benchmarks import generation as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "sft":
    from empathy_jax.benchmarks import sft as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "reward":
    from empathy_jax.benchmarks import reward as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "ppo":
    from empathy_jax.benchmarks import ppo as bench  # pylint: disable=import-outside-toplevel
  elif cfg.mode == "tokenize":
    from empathy_jax.benchmarks import tokenize as bench  # pylint: disable=import-outside-toplevel
  else:
    from empathy_jax.benchmarks import classifiers as bench  # pylint: disable=import-outside-toplevel
  bench.run(cfg)


if __name__ == "__main__":
  app.run(main)
