"""Dialogue and reward datasets in the original project's folder format.

A dialogue split folder holds `contexts.json` (list of lists of utterances, oldest first),
`targets.json` (the next utterance) and optionally `instructions.json` / `knowledge.json` (one
string or null per example). A reward split holds `contexts.json`, `responses.json` (candidate
responses per context) and `ratings.json` (`[index_a, index_b, factor]` per rated pair).

Every check reports file, index and reason (see `errors.Problem`); nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
from typing import Any, Sequence

from empathy_jax.errors import DatasetError, Problem

SPLITS = ("train", "val", "test")
DIALOGUE_FILES = ("contexts.json", "targets.json")
OPTIONAL_DIALOGUE_FILES = ("instructions.json", "knowledge.json")
REWARD_FILES = ("contexts.json", "responses.json", "ratings.json")


@dataclasses.dataclass(frozen=True)
class DialogueSplit:
  """One split of a dialogue dataset; `instructions`/`knowledge` entries may be None."""

  contexts: list[list[str]]
  targets: list[str]
  instructions: list[str | None]
  knowledge: list[str | None]
  path: str = ""

  def __len__(self) -> int:
    return len(self.targets)

  def select(self, indices: Sequence[int]) -> "DialogueSplit":
    return DialogueSplit(
        contexts=[self.contexts[i] for i in indices],
        targets=[self.targets[i] for i in indices],
        instructions=[self.instructions[i] for i in indices],
        knowledge=[self.knowledge[i] for i in indices],
        path=self.path,
    )


@dataclasses.dataclass(frozen=True)
class RewardSplit:
  """Pairwise-rated responses: `ratings[i]` holds (a, b, factor) triples over `responses[i]`."""

  contexts: list[list[str]]
  responses: list[list[str]]
  ratings: list[list[tuple[int, int, float]]]
  path: str = ""

  def __len__(self) -> int:
    return len(self.contexts)


def erased_indices(n: int, level: float) -> set[int]:
  """Indices whose instruction/knowledge the original erases at `data_erasure_level`.

  Reproduces the original exactly: `random.seed(42)` then `random.sample(range(n), int(p*n))`.
  A private `random.Random` gives the same draws without touching the global generator.
  """
  if not 0.0 <= level <= 1.0:
    raise ValueError(f"data_erasure_level must be in [0, 1], got {level}")
  return set(random.Random(42).sample(range(n), k=int(level * n)))


def erase(values: Sequence[str | None], level: float) -> list[str | None]:
  chosen = erased_indices(len(values), level)
  return [None if i in chosen else v for i, v in enumerate(values)]


# ---------------------------------------------------------------------------------------------
# Reading and checking files.


def _read_json(path: str, problems: list[Problem]) -> Any:
  if not os.path.isfile(path):
    problems.append(Problem(path, None, "required file is missing"))
    return None
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (json.JSONDecodeError, RecursionError) as e:  # RecursionError: nested too deep
    problems.append(Problem(path, None, f"invalid JSON: {e}"))
  except UnicodeDecodeError as e:
    problems.append(Problem(path, None, f"not UTF-8 text: {e}"))
  except OSError as e:
    problems.append(Problem(path, None, e.strerror or str(e)))
  return None


def read_json(path: str) -> Any:
  """A JSON file's value; a missing, malformed or non-UTF-8 file raises `DatasetError`
  naming it."""
  problems: list[Problem] = []
  value = _read_json(path, problems)
  if problems:
    raise DatasetError(problems)
  return value


def _check_list(path: str, value: Any, problems: list[Problem]) -> bool:
  if value is None:
    return False
  if not isinstance(value, list):
    problems.append(Problem(path, None, f"expected a JSON list, found {type(value).__name__}"))
    return False
  if not value:
    problems.append(Problem(path, None, "has no examples (an empty list)"))
    return False
  return True


def _check_contexts(path: str, contexts: list, problems: list[Problem]) -> None:
  for i, context in enumerate(contexts):
    if not isinstance(context, list):
      problems.append(Problem(path, i, f"context must be a list of strings, found "
                                       f"{type(context).__name__}"))
    elif not context:
      problems.append(Problem(path, i, "empty context (no utterances)"))
    else:
      for j, turn in enumerate(context):
        if not isinstance(turn, str):
          problems.append(Problem(path, i, f"utterance {j} must be a string, found "
                                           f"{type(turn).__name__}"))


def _check_strings(path: str, values: list, problems: list[Problem], nullable: bool) -> None:
  for i, v in enumerate(values):
    if isinstance(v, str) or (nullable and v is None):
      continue
    kind = "a string or null" if nullable else "a string"
    problems.append(Problem(path, i, f"must be {kind}, found {type(v).__name__}"))


def _check_lengths(files: dict[str, list], problems: list[Problem]) -> None:
  lengths = {path: len(v) for path, v in files.items()}
  if len(set(lengths.values())) > 1:
    listed = ", ".join(f"{os.path.basename(p)}={n}" for p, n in lengths.items())
    first = next(iter(lengths))
    problems.append(Problem(os.path.dirname(first), None,
                            f"lists have different lengths: {listed}"))


def _read_lists(split_dir: str, names, optional=()) -> tuple[list[Problem], dict[str, Any]]:
  """Reads a split's JSON lists (an `optional` file may be absent) and checks its contexts;
  returns (problems, raw lists by file name)."""
  problems: list[Problem] = []
  raw: dict[str, Any] = {}
  for name in (*names, *optional):
    path = os.path.join(split_dir, name)
    if name in optional and not os.path.exists(path):
      continue
    value = _read_json(path, problems)
    if _check_list(path, value, problems):
      raw[name] = value
  if "contexts.json" in raw:
    _check_contexts(os.path.join(split_dir, "contexts.json"), raw["contexts.json"], problems)
  return problems, raw


def check_dialogue_split(split_dir: str) -> tuple[list[Problem], dict[str, Any]]:
  """Reads and checks one dialogue split; returns (problems, raw lists by file name)."""
  problems, raw = _read_lists(split_dir, DIALOGUE_FILES, OPTIONAL_DIALOGUE_FILES)
  if "targets.json" in raw:
    _check_strings(os.path.join(split_dir, "targets.json"), raw["targets.json"], problems,
                   nullable=False)
  for name in OPTIONAL_DIALOGUE_FILES:
    if name in raw:
      _check_strings(os.path.join(split_dir, name), raw[name], problems, nullable=True)
  _check_lengths({os.path.join(split_dir, k): v for k, v in raw.items()}, problems)
  return problems, raw


def load_dialogue_split(split_dir: str, data_erasure_level: float = 0.0) -> DialogueSplit:
  """Loads a checked dialogue split, erasing instructions and knowledge as the original does."""
  problems, raw = check_dialogue_split(split_dir)
  if problems:
    raise DatasetError(problems)
  n = len(raw["targets.json"])
  instructions = raw.get("instructions.json", [None] * n)
  knowledge = raw.get("knowledge.json", [None] * n)
  return DialogueSplit(
      contexts=raw["contexts.json"],
      targets=raw["targets.json"],
      instructions=erase(instructions, data_erasure_level),
      knowledge=erase(knowledge, data_erasure_level),
      path=split_dir,
  )


def _check_ratings(path: str, ratings: list, responses: list | None,
                   problems: list[Problem]) -> None:
  for i, per_context in enumerate(ratings):
    if not isinstance(per_context, list):
      problems.append(Problem(path, i, f"ratings must be a list of [a, b, factor], found "
                                       f"{type(per_context).__name__}"))
      continue
    if not per_context:
      problems.append(Problem(path, i, "has no ratings: the context would add nothing but a "
                                       "0/0 (NaN) to the reward loss; drop it or rate it"))
    n_resp = None
    if responses is not None and i < len(responses) and isinstance(responses[i], list):
      n_resp = len(responses[i])
    for j, rating in enumerate(per_context):
      where = f"rating {j} {rating!r}"
      if (not isinstance(rating, list) or len(rating) != 3
          or not all(isinstance(x, int) and not isinstance(x, bool) for x in rating[:2])
          or not isinstance(rating[2], (int, float)) or isinstance(rating[2], bool)):
        problems.append(Problem(path, i, f"{where} must be [int, int, number]"))
        continue
      a, b, factor = rating
      if not math.isfinite(factor):
        problems.append(Problem(path, i, f"{where} has a non-finite factor"))
      if a == b:
        problems.append(Problem(path, i, f"{where} compares a response with itself"))
      if n_resp is not None and not (0 <= a < n_resp and 0 <= b < n_resp):
        problems.append(Problem(path, i, f"{where} has an index out of range "
                                         f"(context has {n_resp} responses)"))


def check_reward_split(split_dir: str) -> tuple[list[Problem], dict[str, Any]]:
  problems, raw = _read_lists(split_dir, REWARD_FILES)
  if "responses.json" in raw:
    path = os.path.join(split_dir, "responses.json")
    for i, cands in enumerate(raw["responses.json"]):
      if not isinstance(cands, list) or not cands:
        problems.append(Problem(path, i, "responses must be a non-empty list of strings"))
      elif not all(isinstance(r, str) for r in cands):
        problems.append(Problem(path, i, "every response must be a string"))
  if "ratings.json" in raw:
    _check_ratings(os.path.join(split_dir, "ratings.json"), raw["ratings.json"],
                   raw.get("responses.json"), problems)
  _check_lengths({os.path.join(split_dir, k): v for k, v in raw.items()}, problems)
  return problems, raw


def load_reward_split(split_dir: str) -> RewardSplit:
  problems, raw = check_reward_split(split_dir)
  if problems:
    raise DatasetError(problems)
  return RewardSplit(
      contexts=raw["contexts.json"],
      responses=raw["responses.json"],
      ratings=[[(int(a), int(b), float(f)) for a, b, f in r] for r in raw["ratings.json"]],
      path=split_dir,
  )


def detect_dataset_kind(dataset_dir: str) -> str:
  """'reward' when train/ has responses.json and ratings.json, else 'dialogue'."""
  if not os.path.isdir(dataset_dir):
    raise DatasetError([Problem(dataset_dir, None, "dataset directory does not exist")])
  train = os.path.join(dataset_dir, "train")
  if os.path.exists(os.path.join(train, "responses.json")) or os.path.exists(
      os.path.join(train, "ratings.json")):
    return "reward"
  return "dialogue"


def split_dir(dataset_dir: str, split: str) -> str:
  path = os.path.join(dataset_dir, split)
  if not os.path.isdir(path):
    raise DatasetError([Problem(path, None, f"split folder '{split}' is missing")])
  return path
