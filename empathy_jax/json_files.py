"""JSON files that are whole or absent: written beside the target, fsynced, renamed over it;
read back as a dict, or None when missing or not one."""

from __future__ import annotations

import json
import os


def write_atomic(path: str, value, **dump_options) -> None:
  """`dump_options` override json.dump's (indent 2, non-ASCII kept); `indent=None,
  ensure_ascii=True` writes what a plain `json.dump(value, f)` writes."""
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(value, f, **{"indent": 2, "ensure_ascii": False, **dump_options})
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def read_dict(path: str) -> dict | None:
  try:
    with open(path, encoding="utf-8") as f:
      value = json.load(f)
  except (OSError, ValueError):
    return None
  return value if isinstance(value, dict) else None
