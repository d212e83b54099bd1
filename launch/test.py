#!/usr/bin/env python
"""Generates responses on a test split and scores them as the original's `test` does.

  python launch/test.py --dataset_dir datasets/empathetic_dialogues --model GODEL_TINY \\
      --max_examples 64 --output_dir outputs/godel_tiny
  python launch/test.py --dataset_dir datasets/empathetic_dialogues \\
      --pretrained_model_dir runs/godel_tiny/tensorboard_logs/version_0 \\
      --emo_classifier_dir clf/emotion --intent_classifier_dir clf/intent --epitome_dir epitome
  python launch/test.py --config configs/eval_godel_ed.py:tiny --output_dir outputs/tiny

Writes test_data.json, test_metrics.json and classwise_test_metrics.json and prints a table.
Generation flags left out take the checkpoint's generation_config, as Hugging Face does.
Every input (dataset split, model, classifier folders, output folder) is checked first.
"""

import sys

import jax
from absl import app, flags

from empathy_jax import compilation, launch_flags, settings, sharding
from empathy_jax.errors import CheckpointError, DatasetError, OutputExistsError
from empathy_jax.evaluation.suite import format_table
from empathy_jax.evaluation.testing import TestConfig, run_test

F = flags
launch_flags.define_model_flags()
settings.define_flags(TestConfig)  # the run's settings, from its fields
_SCORES = launch_flags.define_metric_flags()
_GENERATION_FLAGS = launch_flags.define_generation_flags()
_MESH = launch_flags.define_mesh_flags()
launch_flags.define_distributed_flags()
_OVERWRITE = launch_flags.define_overwrite_flag()
_CACHE = launch_flags.define_compilation_cache_flag()
launch_flags.define_config_flag()
launch_flags.list_in_help()

_GENERATION = launch_flags.GENERATION_FLAGS
_PLAIN = tuple(f.name for f in settings.flag_fields(TestConfig))


def main(argv):
  del argv
  _CACHE()
  v = launch_flags.value
  launch_flags.check_config_fields(set(_GENERATION + _PLAIN + launch_flags.METRIC_FLAGS) | {
      "model", "pretrained_model_dir", "mesh_data", "mesh_fsdp", "mesh_tensor"})
  if v("distributed"):
    sharding.initialize_distributed(v("coordinator_address"), v("num_processes"),
                                    v("process_id"))
  if not v("dataset_dir"):
    launch_flags.fail("--dataset_dir is required (or a --config with it)")
  model, pretrained = launch_flags.model_source()
  generation = _GENERATION_FLAGS()
  try:
    cfg = TestConfig(
        **{k: v(k) for k in _PLAIN}, model=model, pretrained_model_dir=pretrained,
        scores=_SCORES(v("batch_size")),
        generation={k: x for k, x in generation.items() if x is not None},
        mesh=_MESH(), trust_pickle=v("trust_pickle"), overwrite=_OVERWRITE.value)
  except ValueError as e:
    launch_flags.fail(str(e))
  try:
    metrics = run_test(cfg)
  except (DatasetError, CheckpointError, OutputExistsError) as e:
    launch_flags.fail(str(e))
  if jax.process_index() == 0:
    print(format_table(metrics))
    print(f"results in {cfg.out_dir()}")
    print(compilation.summary(), file=sys.stderr)


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
