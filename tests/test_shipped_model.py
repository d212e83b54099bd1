"""GODEL_SMALL_ED, the dialogue model this project is training and ships (configs/godel_small_ed.py):
its files (bfloat16, within the size budget) load as float32 GODEL_TINY-shaped parameters, and
on held-out test rows it does what docs/models.md says -- today that it is not finished: its
perplexity and its collapsed greedy outputs (the figures recomputed here from the rows test.py
writes)."""

import collections
import json
import os

import jax
import numpy as np
import pytest

import hf_fixtures as hf
from conftest import ED_DIR
from empathy_jax import registry
from empathy_jax.models import model_dir
from empathy_jax.models.loading import convert_checkpoint, load_model

# docs/models.md, "the test in the suite": test.py on the first 256 test rows, greedy, 32 new
# tokens at most.
ROWS, DOC_PPL = 256, 106.45


def test_the_shipped_files_are_bfloat16_within_budget_and_load_as_float32():
  spec = registry.get_model_spec("GODEL_SMALL_ED")
  folder = spec.weights_dir
  size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
  assert size <= 40 * 2**20, size
  stored = model_dir.restore_tree(os.path.join(folder, "params"))
  assert {str(x.dtype) for x in jax.tree.leaves(stored)} == {"bfloat16"}
  loaded = load_model("GODEL_SMALL_ED")
  assert loaded.name == "GODEL_SMALL_ED" and loaded.fmt.family == "godel"
  for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(stored)):
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a, np.asarray(b, np.float32))
  tiny = load_model("GODEL_TINY")
  assert jax.tree.map(np.shape, loaded.params) == jax.tree.map(np.shape, tiny.params)
  # Trained, not random: its weights are far from a fresh initialisation's.
  assert not np.allclose(jax.tree.leaves(loaded.params)[0], jax.tree.leaves(tiny.params)[0])


def test_the_shipped_model_answers_held_out_rows_as_documented(tmp_path):
  from empathy_jax.evaluation.testing import TestConfig, run_test

  out = tmp_path / "small"
  metrics = run_test(TestConfig(dataset_dir=ED_DIR, model="GODEL_SMALL_ED", output_dir=str(out),
                                max_examples=ROWS, batch_size=32,
                                generation={"beam_width": 1, "sample": False,
                                            "max_new_tokens": 32}))
  rows = json.load(open(out / "test_data.json"))
  assert len(rows) == ROWS
  outputs = [r["output"] for r in rows]
  counts = collections.Counter(outputs)
  assert metrics["ppl"] == pytest.approx(DOC_PPL, rel=2e-3)
  # Short of its targets (docs/models.md): greedy answers collapse to a few generic replies.
  assert len(counts) == 6 and counts.most_common(1)[0][1] == 131, counts.most_common(3)
  assert all(o.strip() for o in outputs)  # words, not empty strings


def test_a_packaged_conversion_holds_bfloat16_parameters_and_no_tokenizer(tmp_path):
  hf.save_torch_model("godel", str(tmp_path / "godel"))
  source = load_model(str(tmp_path / "godel"))
  written = convert_checkpoint(str(tmp_path / "godel"), str(tmp_path / "packaged"), "packaged")
  assert not os.path.exists(os.path.join(written, "tokenizer"))
  stored = model_dir.restore_tree(os.path.join(written, "params"))
  assert {str(x.dtype) for x in jax.tree.leaves(stored)} == {"bfloat16"}
  back = model_dir.load_params(written)
  for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(source.params)):
    assert a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=2**-8, atol=1e-30)  # bfloat16's 8 significand bits


def test_generation_starts_from_the_token_the_decoder_was_trained_to_start_from():
  loaded = load_model("GODEL_SMALL_ED")
  from empathy_jax.generation.config import resolve

  start = resolve({}, loaded.generation_config, loaded.model.cfg).decoder_start_token_id
  first = loaded.fmt.encode_targets(["hello"])[0].ids[0]  # SFT's first decoder input
  assert start == first == loaded.fmt.pad_id
