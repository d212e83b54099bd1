"""The response cache of `test_llm`: one JSON line per answered example, appended and fsynced
as each response arrives, so a kill loses at most the requests in flight. Entries are keyed by
example id and the prompt's hash: a changed prompt template or model asks again."""

from __future__ import annotations

import hashlib
import json
import os
import threading


def prompt_key(example_id, prompt: str, model_name: str) -> str:
  digest = hashlib.sha256(f"{model_name}\0{prompt}".encode()).hexdigest()[:16]
  return f"{example_id}:{digest}"


class ResponseCache:
  def __init__(self, path: str):
    self.path = path
    self.entries: dict[str, str] = {}
    self._lock = threading.Lock()
    if os.path.exists(path):
      self._load()

  def _load(self) -> None:
    with open(self.path, "rb") as f:
      data = f.read()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
      if not line.strip():
        continue
      try:
        entry = json.loads(line)
        self.entries[entry["key"]] = entry["response"]
      except (json.JSONDecodeError, KeyError, TypeError) as e:
        if i == len(lines) - 1:  # a line torn by a kill mid-write: drop it
          break
        raise ValueError(f"{self.path}, line {i + 1}: not a cache entry ({e})") from e
    if data and not data.endswith(b"\n"):  # cut the torn tail so appends start a fresh line
      with open(self.path, "rb+") as f:
        f.truncate(data.rfind(b"\n") + 1)

  def get(self, key: str) -> str | None:
    return self.entries.get(key)

  def put(self, key: str, response: str) -> None:
    line = json.dumps({"key": key, "response": response}, ensure_ascii=False) + "\n"
    with self._lock:
      with open(self.path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())
      self.entries[key] = response
