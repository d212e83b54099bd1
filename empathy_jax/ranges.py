"""The allowed range of every numeric setting, in one table that every config checks
(`check(config)` in its `__post_init__`), so a bad value stops a launcher before any work with
`--NAME must be ...`. NaN fails every range."""

from __future__ import annotations

import dataclasses
import math

# rule: (lowest, lowest allowed?, highest, highest allowed?, integer?)
_RULES = {
    "count": (1, True, math.inf, False, True),
    "index": (0, True, math.inf, False, True),
    "probability": (0.0, True, 1.0, True, False),
    "positive": (0.0, False, math.inf, False, False),
    "non-negative": (0.0, True, math.inf, False, False),
    "dropout": (0.0, True, 1.0, False, False),
    "top_p": (0.0, False, 1.0, True, False),
    "fraction below 1": (0.0, True, 1.0, False, False),
    "finite": (-math.inf, False, math.inf, False, False),
}

RANGES = {
    # optimisation
    "initial_lr": "positive", "weight_decay": "non-negative", "clip_norm": "non-negative",
    "warmup_steps": "index", "grad_accum": "count",
    # data and cadence
    "batch_size": "count", "max_epochs": "count", "max_train_examples": "count",
    "max_val_examples": "count", "max_examples": "count", "max_contexts": "count",
    "data_erasure_level": "probability", "val_fraction": "fraction below 1",
    "num_val_samples": "index", "sample_max_new_tokens": "count", "metric_n_grams": "count",
    # model
    "dropout_rate": "dropout", "dropout": "dropout",
    # generation
    "max_new_tokens": "count", "beam_width": "count", "temperature": "positive",
    "top_k": "index", "top_p": "top_p", "length_alpha": "finite",
    # PPO
    "clip_epsilon": "positive", "kl_penalty": "non-negative", "gamma": "probability",
    "lam": "probability", "vf_coeff": "non-negative", "entropy_coeff": "non-negative",
    "ppo_epochs": "count", "num_minibatches": "count", "kl_target": "non-negative",
    "kl_horizon": "count", "value_clip": "non-negative", "missing_eos_penalty": "non-negative",
    "value_head_dropout": "dropout",
    # reward model
    "margin": "non-negative", "center_rewards_coefficient": "non-negative",
    # DPO, GRPO
    "label_smoothing": "fraction below 1", "num_iterations": "count", "group_size": "count",
}


def describe(rule: str) -> str:
  lo, lo_in, hi, hi_in, integer = _RULES[rule]
  if integer:
    return f"an integer >= {lo}"
  if lo == -math.inf:
    return "a finite number"
  if hi == math.inf:
    return f"{'>=' if lo_in else '>'} {lo:g}"
  return f"in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def check_value(name: str, value, rule: str | None = None) -> None:
  """Raises ValueError (`--name must be ...`) unless `value` is in `name`'s range."""
  rule = rule or RANGES[name]
  lo, lo_in, hi, hi_in, integer = _RULES[rule]
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
  if ok and integer:
    ok = float(value).is_integer()
  if ok:
    ok = (value >= lo if lo_in else value > lo) and (value <= hi if hi_in else value < hi)
  if not ok:
    raise ValueError(f"--{name} must be {describe(rule)}, got {value}")


def check(config) -> None:
  """Checks every field of a dataclass `config` that has a range (None: not set, skipped)."""
  for field in dataclasses.fields(config):
    value = getattr(config, field.name)
    if field.name in RANGES and value is not None:
      check_value(field.name, value)
