"""Model tables and survey samples in the original's formats (`crowd_sourced_feedback/`).

A survey folder holds `model_data/<uuid>.json` (one table per model: `model_id`,
`model_name`, `version`, `responses` {context id as a string: response}), `contexts.json`
(the test split's dialogue contexts the responses answer, copied from the dataset the GOLD
table came from), the sample database and `results/`. Every file read here is untrusted data:
a fault is a `DatasetError` naming the file.
"""

from __future__ import annotations

import os
import random
import uuid

from empathy_jax.data.dialogue_dataset import read_json
from empathy_jax.errors import DatasetError, Problem
from empathy_jax.json_files import write_atomic

GOLD = "GOLD"  # the human targets' table; reserved
# The original's status codes (crowd_sourced_feedback/backend_config.json).
PENDING, IN_PROGRESS, COMPLETE = 0, 1, 2
MODEL_DIR, CONTEXTS_FILE, RESULTS_DIR = "model_data", "contexts.json", "results"


def _is_str_list(value) -> bool:
  return isinstance(value, list) and all(isinstance(t, str) for t in value)


def load_contexts(path: str) -> list[list[str]]:
  """A dataset split's contexts.json: a list of dialogue contexts (lists of turns)."""
  contexts = read_json(path)
  if not isinstance(contexts, list) or not contexts:
    raise DatasetError([Problem(path, None, "expected a non-empty list of dialogue contexts")])
  bad = [i for i, c in enumerate(contexts) if not (_is_str_list(c) and c)]
  if bad:
    raise DatasetError([Problem(path, i, "a context must be a non-empty list of strings")
                        for i in bad])
  return contexts


def load_targets(path: str, count: int) -> list[str]:
  targets = read_json(path)
  if not _is_str_list(targets) or len(targets) != count:
    raise DatasetError([Problem(path, None, f"expected a list of {count} strings, one per "
                                            f"context")])
  return targets


def check_table(table, path: str) -> dict:
  """A model table as the original writes it, or a DatasetError naming the file."""
  keys = {"model_id", "model_name", "version", "responses"}
  if not isinstance(table, dict) or set(table) != keys:
    raise DatasetError([Problem(path, None, f"a model table has exactly the keys "
                                            f"{sorted(keys)}")])
  responses = table["responses"]
  if not (isinstance(table["model_id"], str) and isinstance(table["model_name"], str)
          and (table["version"] is None or type(table["version"]) is int)
          and isinstance(responses, dict)
          and all(k.isdigit() and isinstance(v, str) for k, v in responses.items())):
    raise DatasetError([Problem(path, None, "model_id and model_name must be strings, version "
                                            "an integer or null, responses {id: text}")])
  return table


def load_tables(survey_dir: str) -> list[dict]:
  """Every model table of the survey, in file-name order (the original lists the folder in
  the file system's order, which only changes the key order of model_ratings.json)."""
  folder = os.path.join(survey_dir, MODEL_DIR)
  if not os.path.isdir(folder):
    return []
  tables = []
  for name in sorted(os.listdir(folder)):
    path = os.path.join(folder, name)
    if name.endswith(".json") and os.path.isfile(path):
      tables.append(check_table(read_json(path), path))
  ids = [t["model_id"] for t in tables]
  if len(set(ids)) != len(ids):
    raise DatasetError([Problem(folder, None, "two model tables share a model_id")])
  return tables


def write_table(survey_dir: str, model_id: str, name: str, version: int | None,
                responses: dict[str, str]) -> dict:
  """A new model table (read-only, as the original leaves it); never over another one."""
  table = {"model_id": model_id, "model_name": name, "version": version,
           "responses": responses}
  folder = os.path.join(survey_dir, MODEL_DIR)
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, f"{model_id}.json")
  if os.path.exists(path):
    raise DatasetError([Problem(path, None, "a model table with this id exists already")])
  write_atomic(path, table)
  os.chmod(path, 0o444)
  return table


def survey_contexts(survey_dir: str, dataset_dir: str | None = None) -> list[list[str]]:
  """The contexts the survey's responses answer: the survey's copy, made from
  `dataset_dir/test/contexts.json` the first time; a later dataset must hold the same."""
  own = os.path.join(survey_dir, CONTEXTS_FILE)
  if dataset_dir is None:
    return load_contexts(own)
  theirs = load_contexts(os.path.join(dataset_dir, "test", CONTEXTS_FILE))
  if os.path.exists(own):
    if load_contexts(own) != theirs:
      raise DatasetError([Problem(os.path.join(dataset_dir, "test", CONTEXTS_FILE), None,
                                  f"differs from the contexts this survey was made with "
                                  f"({own})")])
  else:
    os.makedirs(survey_dir, exist_ok=True)
    write_atomic(own, theirs)
  return theirs


def new_id() -> str:
  """A fresh version-4 UUID (never from a seed: two commands with one seed must not share
  ids)."""
  return str(uuid.uuid4())


def sample(sample_id: str, context_id: int, context: list[str], pair, status: int = PENDING
           ) -> dict:
  """One survey sample as push_new_samples.py writes it; `pair` is ((model A id, response A),
  (model B id, response B)), already shuffled."""
  (model_a, response_a), (model_b, response_b) = pair
  return {"id": sample_id, "modelA": model_a, "modelB": model_b,
          "sample": {"id": context_id, "context": context, "responseA": response_a,
                     "responseB": response_b},
          "status": status}


def pair_samples(tables_a: list[dict], tables_b: list[dict] | None, context_ids,
                 contexts: list[list[str]], rng: random.Random) -> list[dict]:
  """Every pair of models on each context, sides shuffled: each pair within `tables_a`
  (push_new_samples.py), or each table of `tables_a` against each of `tables_b`
  (add_new_model.py, a new model against the tables already there)."""
  samples = []
  for cid in context_ids:
    if tables_b is None:
      pairs = [(a, b) for i, a in enumerate(tables_a) for b in tables_a[i + 1:]]
    else:
      pairs = [(a, b) for a in tables_a for b in tables_b]
    for a, b in pairs:
      if str(cid) not in a["responses"] or str(cid) not in b["responses"]:
        continue  # a model tested on part of the split
      pair = [(a["model_id"], a["responses"][str(cid)]), (b["model_id"], b["responses"][str(cid)])]
      rng.shuffle(pair)
      samples.append(sample(new_id(), cid, contexts[cid], pair))
  return samples


def common_context_ids(tables: list[dict], count: int) -> list[int]:
  """Context ids that every table answers (models tested on part of the split answer fewer)."""
  common = set(range(count))
  for t in tables:
    common &= {int(k) for k in t["responses"]}
  return sorted(common)
