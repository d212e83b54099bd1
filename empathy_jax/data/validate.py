"""Checks a dataset folder before a long run and summarises it (`launch/validate_dataset.py`)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from empathy_jax.data import dialogue_dataset as dd
from empathy_jax.errors import Problem
from empathy_jax.registry import get_model_spec
from empathy_jax.families import make_format
from empathy_jax.tokenization.loading import load_hf_tokenizer


@dataclasses.dataclass
class SplitSummary:
  name: str
  examples: int
  mean_turns: float
  max_turns: int
  context_tokens: tuple[float, int] | None = None  # (mean, max)
  target_tokens: tuple[float, int] | None = None
  truncated_contexts: int = 0
  truncated_targets: int = 0


@dataclasses.dataclass
class ValidationReport:
  kind: str
  problems: list[Problem]
  splits: list[SplitSummary]

  @property
  def ok(self) -> bool:
    return not self.problems

  def format(self) -> str:
    lines = [f"dataset kind: {self.kind}"]
    for s in self.splits:
      line = (f"  {s.name}: {s.examples} examples, context turns mean {s.mean_turns:.1f} "
              f"max {s.max_turns}")
      if s.context_tokens:
        line += (f"; context tokens mean {s.context_tokens[0]:.1f} max {s.context_tokens[1]}, "
                 f"target tokens mean {s.target_tokens[0]:.1f} max {s.target_tokens[1]}; "
                 f"would truncate {s.truncated_contexts} contexts, "
                 f"{s.truncated_targets} targets")
      lines.append(line)
    if self.problems:
      lines.append(f"{len(self.problems)} problem(s):")
      lines.extend(f"  {p}" for p in self.problems)
    else:
      lines.append("no problems found")
    return "\n".join(lines)


def validate_dataset(dataset_dir: str, model: str | None = None) -> ValidationReport:
  """Checks every split present; token statistics when a registry model name is given."""
  try:
    kind = dd.detect_dataset_kind(dataset_dir)
  except dd.DatasetError as e:
    return ValidationReport("unknown", e.problems, [])
  fmt = None
  if model is not None and kind == "dialogue":
    spec = get_model_spec(model)
    fmt = make_format(spec.family, load_hf_tokenizer(spec.tokenizer, spec.family),
                      spec.max_length)
  problems: list[Problem] = []
  summaries = []
  splits = ("train",) if kind == "reward" else dd.SPLITS
  for split in splits:
    path = os.path.join(dataset_dir, split)
    if not os.path.isdir(path):
      problems.append(Problem(path, None, f"split folder '{split}' is missing"))
      continue
    checker = dd.check_reward_split if kind == "reward" else dd.check_dialogue_split
    found, raw = checker(path)
    problems.extend(found)
    if found:
      continue
    contexts = raw["contexts.json"]
    turns = [len(c) for c in contexts]
    summary = SplitSummary(split, len(contexts), float(np.mean(turns)), max(turns))
    if fmt is not None:
      data = dd.load_dialogue_split(path)
      ctx = fmt.encode_contexts(data.contexts, data.instructions, data.knowledge)
      tgt = fmt.encode_targets(data.targets)
      c_len, t_len = [len(c.ids) for c in ctx], [len(t.ids) for t in tgt]
      summary.context_tokens = (float(np.mean(c_len)), max(c_len))
      summary.target_tokens = (float(np.mean(t_len)), max(t_len))
      summary.truncated_contexts = sum(c.truncated for c in ctx)
      summary.truncated_targets = sum(t.truncated for t in tgt)
    summaries.append(summary)
  return ValidationReport(kind, problems, summaries)
