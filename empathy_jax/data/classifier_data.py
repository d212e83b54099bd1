"""The labelled data the metric classifiers are trained on (`launch/train_classifier.py`).

- EmpatheticIntents (`datasets/empathetic_intents/{train,valid,test}.txt`): one utterance per
  line, `LABEL <SEP> text`, with the 41 labels of `labels.txt`: 32 emotions (ids 0-31) and 9
  empathetic intents (ids 32-40). The emotion task keeps the emotion rows, the intent task the
  intent rows; labels are indices into the metric suite's EMOTION_LABELS / INTENT_LABELS, the
  order the published classifiers' outputs follow.
- EPITOME (`datasets/epitome/{emotional-reactions,explorations,interpretations}-reddit.csv`):
  seeker post, response post, level 0-2 and rationales (the response's spans that show the
  mechanism, `|`-separated). The data has no split; a fixed seeded 75/5/20 split of each file
  (the EPITOME paper's proportions, over the distinct post pairs) gives
  train/validation/test.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re

import numpy as np

from empathy_jax.errors import DatasetError, Problem

TEXT_TASKS = ("emotion", "intent")
EPITOME_TASKS = ("epitome_ER", "epitome_IP", "epitome_EX")
TASKS = TEXT_TASKS + EPITOME_TASKS
SPLITS = ("train", "val", "test")
_INTENT_FILES = {"train": "train.txt", "val": "valid.txt", "test": "test.txt"}
EPITOME_FILES = {"epitome_ER": "emotional-reactions-reddit.csv",
                 "epitome_EX": "explorations-reddit.csv",
                 "epitome_IP": "interpretations-reddit.csv"}
EPITOME_SPLIT_SEED = 2020  # fixed: the held-out test rows must not move with --seed
NUM_EMOTIONS = 32


@dataclasses.dataclass
class LabelledSplit:
  """One split of a task: texts (responses for EPITOME), label indices, and for EPITOME the
  seeker posts and each response's rationale spans."""

  texts: list[str]
  labels: np.ndarray
  seekers: list[str] | None = None
  rationales: list[list[str]] | None = None


def _label_names(path: str) -> list[str]:
  names = {}
  with open(path, encoding="utf-8") as f:
    for i, line in enumerate(f):
      name, _, index = line.strip().rpartition(",")
      if not name or not index.isdigit():
        raise DatasetError([Problem(path, i, "expected 'name,index'")])
      if int(index) in names:
        raise DatasetError([Problem(path, i, f"index {index} is given twice")])
      names[int(index)] = name.lower()
  if sorted(names) != list(range(len(names))):
    raise DatasetError([Problem(path, None, "label indices must be 0..N-1")])
  return [names[i] for i in range(len(names))]


def read_intents(dataset_dir: str, split: str, task: str, labels: tuple[str, ...]
                 ) -> LabelledSplit:
  """The emotion or intent rows of an EmpatheticIntents split, labelled by `labels`' order."""
  names = _label_names(os.path.join(dataset_dir, "labels.txt"))
  keep = range(NUM_EMOTIONS) if task == "emotion" else range(NUM_EMOTIONS, len(names))
  to_ours = {}
  for i in keep:
    if names[i] not in labels:
      raise DatasetError([Problem(os.path.join(dataset_dir, "labels.txt"), i,
                                  f"label {names[i]!r} is not one of the {task} labels")])
    to_ours[i] = labels.index(names[i])
  path = os.path.join(dataset_dir, _INTENT_FILES[split])
  texts, ids, problems = [], [], []
  try:
    f = open(path, encoding="utf-8")
  except OSError as e:
    raise DatasetError([Problem(path, None, e.strerror or str(e))]) from e
  with f:
    for i, line in enumerate(f):
      label, sep, text = line.rstrip("\n").partition(" <SEP> ")
      if not sep or not label.strip().isdigit() or int(label) >= len(names):
        problems.append(Problem(path, i, "expected 'LABEL <SEP> text' with a known label"))
      elif int(label) in to_ours:
        texts.append(text.strip())
        ids.append(to_ours[int(label)])
  if problems:
    raise DatasetError(problems)
  if not texts:
    raise DatasetError([Problem(path, None, f"has no {task} rows")])
  return LabelledSplit(texts, np.asarray(ids, np.int32))


def epitome_split_rows(keys: list) -> dict[str, np.ndarray]:
  """Row indices of the fixed 75/5/20 train/validation/test split of an EPITOME file. Rows are
  split by their (seeker post id, response post id) pair: a pair annotated twice stays on one
  side, so no test pair is also a training pair."""
  groups: dict = {}
  for i, key in enumerate(keys):
    groups.setdefault(key, []).append(i)
  order = np.random.default_rng(EPITOME_SPLIT_SEED).permutation(len(groups))
  members = list(groups.values())
  train_end, val_end = int(0.75 * len(order)), int(0.80 * len(order))
  pick = lambda part: np.sort(np.asarray([i for g in part for i in members[g]], np.int64))
  return {"train": pick(order[:train_end]), "val": pick(order[train_end:val_end]),
          "test": pick(order[val_end:])}


def read_epitome(dataset_dir: str, split: str, task: str) -> LabelledSplit:
  path = os.path.join(dataset_dir, EPITOME_FILES[task])
  try:
    with open(path, encoding="utf-8", newline="") as f:
      rows = list(csv.DictReader(f))
  except OSError as e:
    raise DatasetError([Problem(path, None, e.strerror or str(e))]) from e
  problems = []
  need = {"seeker_post", "response_post", "level", "rationales"}
  if rows and not need <= set(rows[0]):
    raise DatasetError([Problem(path, None, f"needs the columns {sorted(need)}")])
  for i, row in enumerate(rows):
    if row["level"] not in ("0", "1", "2"):
      problems.append(Problem(path, i, f"level {row['level']!r} is not 0, 1 or 2"))
  if problems or not rows:
    raise DatasetError(problems or [Problem(path, None, "has no rows")])
  pick = epitome_split_rows([(r.get("sp_id"), r.get("rp_id")) for r in rows])[split]
  chosen = [rows[i] for i in pick]
  return LabelledSplit(
      texts=[r["response_post"] for r in chosen],
      labels=np.asarray([int(r["level"]) for r in chosen], np.int32),
      seekers=[r["seeker_post"] for r in chosen],
      rationales=[[s.strip() for s in r["rationales"].split("|") if s.strip()] for r in chosen])


def read_split(dataset_dir: str, split: str, task: str, labels: tuple[str, ...]
               ) -> LabelledSplit:
  if task in TEXT_TASKS:
    return read_intents(dataset_dir, split, task, labels)
  return read_epitome(dataset_dir, split, task)


def rationale_token_labels(offsets: list[tuple[int, int]], text: str, spans: list[str]
                           ) -> np.ndarray:
  """1 for each token whose characters lie in one of the rationale spans found in `text`,
  else 0 (special tokens, with empty offsets, are 0)."""
  inside = np.zeros(len(text) + 1, bool)
  for span in spans:
    # The annotations collapse runs of white space: match any run where the span has one.
    found = re.search(r"\s+".join(map(re.escape, span.split())), text)
    if found:
      inside[found.start():found.end()] = True
  return np.asarray([int(end > start and inside[start:end].any()) for start, end in offsets],
                    np.int32)
