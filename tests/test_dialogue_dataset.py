import json
import os
import random

import pytest

from conftest import ED_DIR, REWARD_DIR
from empathy_jax.data import dialogue_dataset as dd
from empathy_jax.errors import DatasetError


def test_real_splits_load_with_original_sizes():
  sizes = {s: len(dd.load_dialogue_split(os.path.join(ED_DIR, s))) for s in dd.SPLITS}
  assert sizes == {"train": 36629, "val": 5712, "test": 5242}
  reward = dd.load_reward_split(os.path.join(REWARD_DIR, "train"))
  assert len(reward) == 110
  assert all(len(r) == 4 for r in reward.responses)


def test_erasure_matches_original_selection():
  n, level = 5242, 0.3
  random.seed(42)
  expected = set(random.sample(range(n), k=int(level * n)))
  assert dd.erased_indices(n, level) == expected
  split = dd.load_dialogue_split(os.path.join(ED_DIR, "test"), data_erasure_level=level)
  erased_instr = {i for i, v in enumerate(split.instructions) if v is None}
  erased_know = {i for i, v in enumerate(split.knowledge) if v is None}
  assert erased_instr == expected and erased_know == expected
  full = dd.load_dialogue_split(os.path.join(ED_DIR, "test"), data_erasure_level=1.0)
  assert all(v is None for v in full.instructions)
  with pytest.raises(ValueError, match="data_erasure_level"):
    dd.erased_indices(10, 1.5)


def _write_split(tmp_path, files):
  d = tmp_path / "train"
  d.mkdir(parents=True, exist_ok=True)
  for name, value in files.items():
    (d / name).write_text(value if isinstance(value, str) else json.dumps(value))
  return str(d)


GOOD = {"contexts.json": [["hi", "hello"], ["how are you"]], "targets.json": ["a", "b"]}


@pytest.mark.parametrize("files, fragment", [
    ({"targets.json": ["a"]}, r"contexts.json: required file is missing"),
    ({**GOOD, "targets.json": "[1, 2"}, r"targets.json: invalid JSON"),
    ({**GOOD, "targets.json": ["a"]}, r"different lengths: contexts.json=2, targets.json=1"),
    ({**GOOD, "targets.json": ["a", 3]}, r"targets.json\[1\]: must be a string, found int"),
    ({**GOOD, "contexts.json": [["hi"], []]}, r"contexts.json\[1\]: empty context"),
    ({**GOOD, "contexts.json": [["hi"], "x"]}, r"contexts.json\[1\]: context must be a list"),
    ({**GOOD, "contexts.json": [["hi", 5], ["x"]]}, r"contexts.json\[0\]: utterance 1 must be"),
    ({**GOOD, "instructions.json": ["x", 7]}, r"instructions.json\[1\]: must be a string or null"),
    ({**GOOD, "knowledge.json": ["x"]}, r"different lengths"),
    ({**GOOD, "contexts.json": {"a": 1}}, r"contexts.json: expected a JSON list, found dict"),
])
def test_dialogue_validation_errors_name_file_index_reason(tmp_path, files, fragment):
  path = _write_split(tmp_path, files)
  with pytest.raises(DatasetError, match=fragment):
    dd.load_dialogue_split(path)


REWARD_GOOD = {"contexts.json": [["hi"]], "responses.json": [["a", "b", "c"]],
               "ratings.json": [[[0, 1, -0.5], [1, 2, 0.0]]]}


@pytest.mark.parametrize("ratings, fragment", [
    ([[[0, 3, 1.0]]], r"ratings.json\[0\]: rating 0 .* index out of range \(context has 3"),
    ([[[1, 1, 1.0]]], r"ratings.json\[0\]: rating 0 .* compares a response with itself"),
    ("[[[0, 1, NaN]]]", r"ratings.json\[0\]: rating 0 .* non-finite factor"),
    ([[[0, 1]]], r"ratings.json\[0\]: rating 0 .* must be \[int, int, number\]"),
    ([[[0, 1, 1.0]], []], r"different lengths"),
])
def test_reward_validation_errors(tmp_path, ratings, fragment):
  path = _write_split(tmp_path, {**REWARD_GOOD, "ratings.json": ratings})
  with pytest.raises(DatasetError, match=fragment):
    dd.load_reward_split(path)


def test_every_problem_is_reported_not_just_the_first(tmp_path):
  path = _write_split(tmp_path, {"contexts.json": [[], ["x"], []], "targets.json": [1, "b", 2]})
  problems, _ = dd.check_dialogue_split(path)
  assert {(os.path.basename(p.file), p.index) for p in problems} == {
      ("contexts.json", 0), ("contexts.json", 2), ("targets.json", 0), ("targets.json", 2)}


def test_dataset_kind_detection(tmp_path):
  assert dd.detect_dataset_kind(ED_DIR) == "dialogue"
  assert dd.detect_dataset_kind(REWARD_DIR) == "reward"
  with pytest.raises(DatasetError, match="does not exist"):
    dd.detect_dataset_kind(str(tmp_path / "nope"))
