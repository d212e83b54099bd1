"""Run folders compatible with the original's instructions: OUT/tensorboard_logs/version_N/.

Re-running the same command continues an unfinished run in its folder; a finished run is left
alone and a new version_N+1 starts. A run folder whose `run_config.json` cannot be read is an
error naming it, never silently replaced. Multi-host: process 0 chooses, every process gets
its choice.
"""

from __future__ import annotations

import json
import os
import re

import jax
import numpy as np

from empathy_jax.errors import CheckpointError

FINISHED = "FINISHED"
RUN_CONFIG = "run_config.json"


def versions(output_dir: str) -> list[int]:
  root = os.path.join(output_dir, "tensorboard_logs")
  if not os.path.isdir(root):
    return []
  found = [re.fullmatch(r"version_(\d+)", d) for d in os.listdir(root)]
  return sorted(int(m.group(1)) for m in found if m)


def version_dir(output_dir: str, n: int) -> str:
  return os.path.join(output_dir, "tensorboard_logs", f"version_{n}")


def select_run(output_dir: str, run_config: dict) -> tuple[str, bool]:
  """(run folder, resuming?) for this command: the latest unfinished run with the same
  configuration, or a new version. Every process gets process 0's choice."""
  choice = np.zeros(2, np.int32)
  if jax.process_index() == 0:
    choice[:] = _choose(output_dir, _normalise(run_config))
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    choice = multihost_utils.broadcast_one_to_all(choice)
  version, resuming = int(choice[0]), bool(choice[1])
  return version_dir(output_dir, version), resuming


def _choose(output_dir: str, run_config: dict) -> tuple[int, int]:
  existing = versions(output_dir)
  if existing:
    last = version_dir(output_dir, existing[-1])
    saved = _read_config(last)
    if saved is None:  # killed between creating the folder and writing its config
      _write_config(last, run_config)
      return existing[-1], 0
    if saved == run_config and not os.path.exists(os.path.join(last, FINISHED)):
      return existing[-1], 1
  n = existing[-1] + 1 if existing else 0
  os.makedirs(version_dir(output_dir, n), exist_ok=True)
  _write_config(version_dir(output_dir, n), run_config)
  return n, 0


def write_hparams(run_dir: str, hparams: dict) -> None:
  if jax.process_index() == 0:
    _write_json(os.path.join(run_dir, "hparams.json"), hparams)


def mark_finished(run_dir: str, summary: dict) -> None:
  if jax.process_index() == 0:
    _write_json(os.path.join(run_dir, FINISHED), summary)


def finished_run(output_dir: str, run_config: dict) -> str | None:
  """The latest run folder under `output_dir` if it finished with this configuration (a
  pipeline stage that need not run again), else None."""
  existing = versions(output_dir)
  if not existing:
    return None
  last = version_dir(output_dir, existing[-1])
  if not os.path.exists(os.path.join(last, FINISHED)):
    return None
  return last if _read_config(last) == _normalise(run_config) else None


def _normalise(cfg: dict) -> dict:
  return json.loads(json.dumps(cfg, sort_keys=True, default=str))


def _write_json(path: str, value) -> None:
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True, default=str)
  os.replace(tmp, path)


def _write_config(run_dir: str, run_config: dict) -> None:
  _write_json(os.path.join(run_dir, RUN_CONFIG), run_config)


def _read_config(run_dir: str) -> dict | None:
  """The folder's run configuration; None for a folder left empty by a kill."""
  path = os.path.join(run_dir, RUN_CONFIG)
  if not os.path.exists(path):
    if not os.listdir(run_dir):
      return None
    raise CheckpointError(f"{run_dir}: run folder without {RUN_CONFIG}; it was not made by "
                          f"empathy-jax, or damaged: move it away, or use another --output_dir")
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise CheckpointError(f"{path}: unreadable run configuration ({e}); fix or remove that "
                          f"run folder, or use another --output_dir") from e
