"""JSON files that are whole or absent: written beside the target, fsynced, renamed over it."""

from __future__ import annotations

import json
import os


def write_atomic(path: str, value) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(value, f, indent=2, ensure_ascii=False)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)
