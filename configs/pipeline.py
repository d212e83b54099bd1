"""The whole loop (launch/pipeline.py): SFT of GODEL on EmpatheticDialogues, the reward model,
PPO against it (and DPO, GRPO, RLOO with --algorithm), then the test of every policy, at the
original's scale; `:tiny` is the
default the launcher runs without --config.

  python launch/pipeline.py --config configs/pipeline.py --output_dir runs/pipeline_large
  python launch/pipeline.py --config configs/pipeline.py:tiny --output_dir runs/pipeline
"""

import ml_collections

from empathy_jax import experiments, pipeline


def get_config(variant: str = ""):
  if variant == "tiny":
    return ml_collections.ConfigDict(pipeline.tiny())
  if variant:
    raise ValueError(f"unknown config variant {variant!r}: use nothing or ':tiny'")
  return ml_collections.ConfigDict({
      "sft": {**experiments.SFT, "model": "GODEL_LARGE"},
      "reward": {**experiments.REWARD, "model": "GODEL_LARGE"},
      "ppo": dict(experiments.PPO),
      "dpo": dict(experiments.DPO),
      "grpo": {**experiments.GRPO, "max_train_examples": None, "max_val_examples": None},
      "classifiers": {t: dict(f) for t, f in experiments.CLASSIFIERS.items()},
      "test": dict(experiments.EVAL)})
