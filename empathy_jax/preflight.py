"""Checks a launcher makes before any heavy work: each raises an error that names the file or
flag and what is wrong (never a traceback from deep inside JAX an hour later)."""

from __future__ import annotations

import os
import tempfile
from typing import Sequence

from empathy_jax.data.dialogue_dataset import check_dialogue_split
from empathy_jax.errors import CheckpointError, DatasetError, Problem
from empathy_jax.models.loading import source_kind
from empathy_jax.registry import get_model_spec


def check_registry_name(name: str) -> None:
  try:
    get_model_spec(name)
  except KeyError as e:
    raise ValueError(f"--model: {e.args[0]}") from e


def check_dialogue_dataset(dataset_dir: str, splits: Sequence[str]) -> None:
  """Reads and checks each split's files; one `DatasetError` lists every problem found."""
  problems: list[Problem] = []
  for split in splits:
    path = os.path.join(dataset_dir, split)
    if not os.path.isdir(path):
      problems.append(Problem(path, None, f"split folder '{split}' is missing"))
      continue
    problems.extend(check_dialogue_split(path)[0])
  if problems:
    raise DatasetError(problems)


def check_model_source(source: str) -> str:
  """What kind of model source this is (registry, ckpt, hf, ours, hub), or a
  `CheckpointError` for a local path that holds no model."""
  return source_kind(source)


def check_writable(path: str) -> None:
  """Proves a file can be written in `path`, or in the nearest existing folder above it when it
  does not exist yet, without leaving anything behind (a run that fails later has written
  nothing)."""
  probe = os.path.abspath(path)
  while not os.path.exists(probe):
    probe = os.path.dirname(probe)
  if not os.path.isdir(probe):
    raise CheckpointError(f"output folder {path}: cannot write there ({probe} is a file)")
  try:
    with tempfile.NamedTemporaryFile(dir=probe, prefix=".write-check-"):
      pass
  except OSError as e:
    raise CheckpointError(f"output folder {path}: cannot write there ({e.strerror})") from e
