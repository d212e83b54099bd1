"""Run folders compatible with the original's instructions: OUT/tensorboard_logs/version_N/.

Re-running the same command continues an unfinished run in its folder; a finished run is left
alone and a new version_N+1 starts.
"""

from __future__ import annotations

import json
import os
import re

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
  configuration, or a new version."""
  existing = versions(output_dir)
  if existing:
    last = version_dir(output_dir, existing[-1])
    same = _read(os.path.join(last, RUN_CONFIG)) == _normalise(run_config)
    if same and not os.path.exists(os.path.join(last, FINISHED)):
      return last, True
  path = version_dir(output_dir, existing[-1] + 1 if existing else 0)
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, RUN_CONFIG), "w") as f:
    json.dump(_normalise(run_config), f, indent=2, sort_keys=True)
  return path, False


def mark_finished(run_dir: str, summary: dict) -> None:
  with open(os.path.join(run_dir, FINISHED), "w") as f:
    json.dump(summary, f, indent=2, sort_keys=True)


def _normalise(cfg: dict) -> dict:
  return json.loads(json.dumps(cfg, sort_keys=True, default=str))


def _read(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, json.JSONDecodeError):
    return None
