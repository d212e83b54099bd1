#!/usr/bin/env python
"""The whole empathy-RLHF loop in one command: SFT -> reward model -> PPO (and/or DPO, GRPO,
RLOO with --algorithm) -> the metric classifiers (trained here once) -> test of every policy ->
a report. Without --config it runs the demo default (GODEL_SMALL_ED, the model
shipped in the package, on slices of the shipped datasets; about ten minutes on a 2-core CPU,
nothing downloaded).

  python launch/pipeline.py --output_dir runs/pipeline
  python launch/pipeline.py --config configs/pipeline.py --output_dir runs/pipeline_large
  python launch/pipeline.py --algorithm ppo,dpo,grpo --output_dir runs/pipeline

Writes OUTPUT_DIR/{sft,reward,ppo,dpo,grpo,rloo}/tensorboard_logs/version_N (each stage's run),
OUTPUT_DIR/test/{sft,ppo,...}/ (test.py's three result files, with rewards; kl.json, the
policy's KL to the SFT policy) and
OUTPUT_DIR/report/report.md and report.html (the reward change with its 95% interval
first). Rerunning the command skips the
stages that finished and resumes the one that was interrupted.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from empathy_jax import compilation, launch_flags
from empathy_jax.errors import CheckpointError, DatasetError, DivergedError
from empathy_jax.pipeline import PipelineConfig, demo, run_pipeline

_OUT = flags.DEFINE_string("output_dir", "runs/pipeline", "Root of every stage's output.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "configs/pipeline.py[:tiny], or a file of the same shape (sft, reward, "
    "ppo, dpo, grpo and test field dicts, optional num_samples).")
_SAMPLES = flags.DEFINE_integer("num_samples", 5, "Sample responses in the report.")
_ALGORITHMS = flags.DEFINE_list("algorithm", ["ppo"], "Algorithms that train a policy from the "
                                "SFT stage's, compared on the same test rows: ppo, dpo, grpo, "
                                "rloo (comma-separated).")
_CLASSIFIERS = flags.DEFINE_list(
    "classifiers", ["emotion", "intent", "epitome_ER", "epitome_IP", "epitome_EX"],
    "Metric classifiers trained here (once; reruns reuse them) for the test stage's emotion, "
    "intent and EPITOME metrics; 'none' for none.")
_CACHE = launch_flags.define_compilation_cache_flag()


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  _CACHE()
  stages = demo()
  num_samples = _SAMPLES.value
  if _CONFIG.value is not None:
    given = _CONFIG.value.to_dict()
    unknown = sorted(set(given) - {"classifiers", "sft", "reward", "ppo", "dpo", "grpo", "test",
                                   "num_samples"})
    if unknown:
      launch_flags.fail(f"--config has fields the pipeline does not take: {unknown}")
    num_samples = given.pop("num_samples", num_samples)
    stages = {k: given.get(k, v) for k, v in stages.items()}
  chosen = [] if _CLASSIFIERS.value == ["none"] else _CLASSIFIERS.value
  unknown = sorted(set(chosen) - set(demo()["classifiers"]))
  if unknown:
    launch_flags.fail(f"--classifiers: unknown task(s) {unknown}")
  if _CLASSIFIERS.present:  # the named tasks: the config's fields, else the demo's
    stages["classifiers"] = {t: stages["classifiers"].get(t, demo()["classifiers"][t])
                             for t in chosen}
  try:
    cfg = PipelineConfig(output_dir=_OUT.value, num_samples=num_samples,
                         algorithms=tuple(_ALGORITHMS.value), **stages)
    run_pipeline(cfg)
  except (DatasetError, CheckpointError, ValueError, TypeError, DivergedError) as e:
    launch_flags.fail(str(e))
  print(compilation.summary(), file=sys.stderr)


if __name__ == "__main__":
  app.run(main)
