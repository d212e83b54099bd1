"""absl flags that several launchers share (the original's names), each group defined once.

A launcher calls a `define_*` function at import time and, in `main`, the function it returns
to build the frozen config from the parsed values.
"""

from __future__ import annotations

from typing import Callable

from absl import flags

from empathy_jax.evaluation.suite import ScoreConfig
from empathy_jax.sharding import MeshConfig


def define_mesh_flags() -> Callable[[], MeshConfig]:
  data = flags.DEFINE_integer("mesh_data", -1, "Mesh data axis size (-1: remaining devices).")
  fsdp = flags.DEFINE_integer("mesh_fsdp", 1, "Mesh fsdp axis size.")
  tensor = flags.DEFINE_integer("mesh_tensor", 1, "Mesh tensor axis size.")
  return lambda: MeshConfig(data.value, fsdp.value, tensor.value)


def define_metric_flags() -> Callable[[int], ScoreConfig]:
  """The metric suite's flags; the returned builder takes the launcher's --batch_size."""
  emo = flags.DEFINE_string("emo_classifier_dir", None, "Emotion classifier folder.")
  intent = flags.DEFINE_string("intent_classifier_dir", None,
                               "Empathetic-intent classifier folder.")
  epitome = flags.DEFINE_string("epitome_dir", None, "Folder with finetuned_{IP,EX,ER}.pth.")
  reward = flags.DEFINE_string("reward_model_dir", None, "Reward model (reward statistics).")
  n_grams = flags.DEFINE_integer("metric_n_grams", 4, "n for BLEU, NIST and dist-1..n.")
  return lambda batch_size: ScoreConfig(emo.value, intent.value, epitome.value, reward.value,
                                        n_grams.value, batch_size)
