"""A test run's results folder: the three result files and `results_info.json`, which says what
wrote them (the tool, the model and every setting that changes the numbers).

Nothing here overwrites what another run wrote. `check_free` refuses, before any work, a folder
whose results came from something else, unless `--overwrite`; results written with the same
provenance are the same run's and may be rewritten. `write` replaces the set as one: the old
`results_info.json` goes first and the new one is written last, after every file is fsynced, so
a folder with a `results_info.json` always holds that run's complete results, and one without
it holds nothing a reader should trust (`matching` says no).
"""

from __future__ import annotations

import json
import os

from empathy_jax.errors import OutputExistsError
from empathy_jax.json_files import read_dict, write_atomic

RESULT_FILES = ("test_data.json", "test_metrics.json", "classwise_test_metrics.json")
INFO = "results_info.json"


def provenance(tool: str, **fields) -> dict:
  """What identifies a results set, as plain JSON (paths made absolute by the caller)."""
  return json.loads(json.dumps({"tool": tool, **fields}, sort_keys=True, default=str))


def _read_info(out_dir: str) -> dict | None:
  return read_dict(os.path.join(out_dir, INFO))


def matching(out_dir: str, info: dict) -> bool:
  """Whether `out_dir` holds a complete results set written with exactly this provenance."""
  return (_read_info(out_dir) == info
          and all(os.path.isfile(os.path.join(out_dir, n)) for n in RESULT_FILES))


def check_free(out_dir: str, info: dict, overwrite: bool, own_input: str | None = None) -> None:
  """Refuses `out_dir` when it holds results another run wrote (`own_input`, the file being
  scored, does not count), unless `overwrite`."""
  if overwrite or not os.path.isdir(out_dir) or _read_info(out_dir) == info:
    return
  skip = os.path.abspath(own_input) if own_input else None
  present = [n for n in (*RESULT_FILES, INFO)
             if os.path.exists(os.path.join(out_dir, n))
             and os.path.abspath(os.path.join(out_dir, n)) != skip]
  if present:
    old = _read_info(out_dir)
    by = (f"{old.get('tool')} on {old.get('model') or old.get('test_data')}" if old
          else "a run that did not record its settings")
    raise OutputExistsError(
        f"{out_dir}: holds results written by {by} ({', '.join(present)}); pass --overwrite "
        f"to replace them, or choose another --output_dir")


def write(out_dir: str, records: list[dict], metrics: dict, classwise: dict,
          info: dict) -> None:
  """Writes the three result files and then `results_info.json` (see the module's note)."""
  os.makedirs(out_dir, exist_ok=True)
  info_path = os.path.join(out_dir, INFO)
  if os.path.exists(info_path):
    os.remove(info_path)
  for name, value in zip(RESULT_FILES, (records, metrics, classwise)):
    write_atomic(os.path.join(out_dir, name), value)
  write_atomic(info_path, info)
  fd = os.open(out_dir, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)
