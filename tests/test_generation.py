"""Generation against transformers' PyTorch `generate`, HF's warpers, and the teacher-forced model."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hf_fixtures as hf
from empathy_jax.generation import processors as P
from empathy_jax.generation.config import GenerationConfig, resolve
from empathy_jax.generation.search import generate_ids
from empathy_jax.models.loading import load_model
from empathy_jax.models.packing import encoder_plan

BLENDERBOT_GENERATION = {"num_beams": 10, "min_length": 20, "max_length": 60,
                         "length_penalty": 0.65, "no_repeat_ngram_size": 3,
                         "encoder_no_repeat_ngram_size": 3, "forced_eos_token_id": 2,
                         "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
                         "decoder_start_token_id": 1}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
  out = {}
  for kind in ("godel", "dialogpt", "blenderbot"):
    d = str(tmp_path_factory.mktemp(kind))
    torch_model, fmt = hf.save_torch_model(kind, d, seed=3)
    out[kind] = (torch_model, load_model(d), d)
  return out


def _hf_generate(torch_model, batch, is_encoder_decoder, **kwargs):
  import torch

  t = lambda x: torch.from_numpy(np.asarray(x)).long()
  with torch.no_grad():
    seq = torch_model.generate(input_ids=t(batch.context_ids_BxC),
                               attention_mask=t(batch.context_mask_BxC), **kwargs).numpy()
  return seq[:, 1:] if is_encoder_decoder else seq[:, batch.context_ids_BxC.shape[1]:]


def _ours(loaded, batch, user, seed=0, packed=True):
  """Our generation; encoder-decoder contexts packed as the test launcher packs them."""
  cfg = resolve(user, loaded.generation_config, loaded.model.cfg,
                prompt_length=batch.context_ids_BxC.shape[1])
  out = generate_ids(loaded.model, loaded.params, jnp.asarray(batch.context_ids_BxC),
                     jnp.asarray(batch.context_mask_BxC), cfg, jax.random.PRNGKey(seed),
                     jnp.arange(batch.context_ids_BxC.shape[0]),
                     encoder_plan(loaded.model, batch.context_mask_BxC) if packed else None)
  return cfg, jax.tree.map(np.asarray, out)


def _assert_same(ours, theirs, fill):
  n = theirs.shape[1]
  np.testing.assert_array_equal(ours.tokens_BxN[:, :n], theirs)
  assert (ours.tokens_BxN[:, n:] == fill).all()


@pytest.mark.parametrize("kind", ["godel", "blenderbot"])
def test_cross_cache_holds_transformers_cross_attention_keys_and_values(models, kind, ed_test):
  """`model.cross_cache` (computed without running the decoder on a token, what decoding starts
  from) against the cross-attention cache transformers fills on its first decoder step."""
  import torch

  torch_model, loaded, _ = models[kind]
  batch = hf.real_batch(loaded.fmt, ed_test, n=3, offset=7)
  t = lambda x: torch.from_numpy(np.asarray(x)).long()
  start = torch.full((3, 1), torch_model.config.decoder_start_token_id, dtype=torch.long)
  with torch.no_grad():
    out = torch_model(input_ids=t(batch.context_ids_BxC),
                      attention_mask=t(batch.context_mask_BxC), decoder_input_ids=start,
                      use_cache=True)
  theirs = out.past_key_values.cross_attention_cache.layers
  model = loaded.model
  states = model.encode(loaded.params, jnp.asarray(batch.context_ids_BxC),
                        jnp.asarray(batch.context_mask_BxC))
  ours = model.cross_cache(loaded.params, states)
  assert len(ours) == len(theirs) == model.num_cache_layers()
  for mine, hf_layer in zip(ours, theirs):
    np.testing.assert_allclose(np.asarray(mine.k), hf_layer.keys.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(mine.v), hf_layer.values.numpy(), rtol=1e-4,
                               atol=1e-5)
  assert np.abs(np.asarray(ours[0].k)).max() > 0.1


@pytest.mark.parametrize("kind", ["godel", "dialogpt", "blenderbot"])
@pytest.mark.parametrize("beams, alpha", [(1, 1.0), (4, 1.0), (4, 0.65), (4, 2.0)])
def test_greedy_and_beam_match_transformers(models, kind, beams, alpha, ed_test):
  torch_model, loaded, _ = models[kind]
  batch = hf.real_batch(loaded.fmt, ed_test, n=6, offset=40)
  user = {"max_new_tokens": 12, "beam_width": beams, "length_alpha": alpha}
  cfg, ours = _ours(loaded, batch, user)
  theirs = _hf_generate(torch_model, batch, loaded.model.is_encoder_decoder,
                        max_new_tokens=12, num_beams=beams, length_penalty=alpha,
                        do_sample=False)
  fill = cfg.pad_token_id if beams == 1 else (cfg.pad_token_id or cfg.eos_token_id)
  _assert_same(ours, theirs, fill)
  if loaded.model.is_encoder_decoder:
    assert encoder_plan(loaded.model, batch.context_mask_BxC) is not None  # packing pays
    _assert_same(_ours(loaded, batch, user, packed=False)[1], theirs, fill)


def test_checkpoint_generation_config_applies_blenderbot_defaults(models, ed_test, tmp_path):
  torch_model, _, d = models["blenderbot"]
  with open(os.path.join(d, "generation_config.json"), "w") as f:
    json.dump(BLENDERBOT_GENERATION, f)
  loaded = load_model(d)
  batch = hf.real_batch(loaded.fmt, ed_test, n=3, offset=7)
  cfg, ours = _ours(loaded, batch, {"max_new_tokens": None})  # no flags: checkpoint defaults
  assert (cfg.beam_width, cfg.min_length, cfg.no_repeat_ngram_size, cfg.max_new_tokens) == (
      10, 20, 3, 59)
  import transformers
  torch_model.generation_config = transformers.GenerationConfig(**BLENDERBOT_GENERATION)
  theirs = _hf_generate(torch_model, batch, True)
  _assert_same(ours, theirs, cfg.eos_token_id)
  assert (ours.mask_BxN.sum(1) >= 19).all()  # min_length 20 counts the start token


@pytest.mark.parametrize("kind", ["godel", "dialogpt"])
def test_ngram_constraints_and_min_length_match_transformers(models, kind, ed_test):
  torch_model, loaded, _ = models[kind]
  batch = hf.real_batch(loaded.fmt, ed_test, n=4, offset=3)
  prompt = 1 if loaded.model.is_encoder_decoder else batch.context_ids_BxC.shape[1]
  kwargs = dict(max_new_tokens=15, num_beams=3, no_repeat_ngram_size=2, min_length=prompt + 8)
  if loaded.model.is_encoder_decoder:
    kwargs["encoder_no_repeat_ngram_size"] = 2
  user = {"max_new_tokens": 15, "beam_width": 3, "no_repeat_ngram_size": 2,
          "min_length": prompt + 8, "encoder_no_repeat_ngram_size": kwargs.get(
              "encoder_no_repeat_ngram_size")}
  cfg, ours = _ours(loaded, batch, user)
  theirs = _hf_generate(torch_model, batch, loaded.model.is_encoder_decoder, do_sample=False,
                        **kwargs)
  _assert_same(ours, theirs, cfg.pad_token_id or cfg.eos_token_id)
  for row in ours.tokens_BxN:  # no repeated bigram in any output
    bigrams = list(zip(row[:-1], row[1:]))
    assert len(bigrams) == len(set(bigrams))


def test_warpers_match_transformers():
  import torch
  from transformers.generation.logits_process import (TemperatureLogitsWarper,
                                                      TopKLogitsWarper, TopPLogitsWarper)

  rng = np.random.default_rng(0)
  logits = rng.normal(size=(5, 300)).astype(np.float32) * 3
  ids = torch.zeros((5, 1), dtype=torch.long)
  for ours, theirs in ((lambda x: P.temperature(x, 0.7), TemperatureLogitsWarper(0.7)),
                       (lambda x: P.top_k(x, 17), TopKLogitsWarper(17)),
                       (lambda x: P.top_p(x, 0.8), TopPLogitsWarper(0.8)),
                       (lambda x: P.top_p(x, 0.05), TopPLogitsWarper(0.05))):
    a = np.asarray(ours(jnp.asarray(logits)))
    b = theirs(ids, torch.from_numpy(logits)).numpy()
    np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
    np.testing.assert_allclose(a[~np.isinf(a)], b[~np.isinf(b)], rtol=1e-6)
  # The fused top-k + top-p path equals HF's two warpers in sequence.
  cfg = GenerationConfig(sample=True, top_k=40, top_p=0.7, temperature=1.3)
  a = np.asarray(P.warp(jnp.asarray(logits), cfg))
  b = TopPLogitsWarper(0.7)(ids, TopKLogitsWarper(40)(ids, TemperatureLogitsWarper(1.3)(
      ids, torch.from_numpy(logits)))).numpy()
  np.testing.assert_array_equal(np.isinf(a), np.isinf(b))
  np.testing.assert_allclose(a[~np.isinf(a)], b[~np.isinf(b)], rtol=1e-6)


def test_sampled_frequencies_match_filtered_distribution(models, ed_test):
  _, loaded, _ = models["dialogpt"]
  batch = hf.real_batch(loaded.fmt, ed_test, n=1)
  n = 4000  # the last 4 prompt tokens of a real row keep the prefill cheap
  ids = jnp.repeat(jnp.asarray(batch.context_ids_BxC[:, -4:]), n, 0)
  mask = jnp.repeat(jnp.asarray(batch.context_mask_BxC[:, -4:]), n, 0)
  cfg = GenerationConfig(max_new_tokens=1, sample=True, temperature=0.05, top_k=6, top_p=0.9,
                         eos_token_id=50256, pad_token_id=50256)
  out = generate_ids(loaded.model, loaded.params, ids, mask, cfg, jax.random.PRNGKey(1),
                     jnp.arange(n))
  logits, _, _ = loaded.model.decode_step(
      loaded.params, ids[:1], jnp.concatenate([mask[:1], jnp.ones((1, 1), mask.dtype)], 1),
      loaded.model.init_cache(1, ids.shape[1] + 1), 0,
      positions_BxT=jnp.cumsum(mask[:1], -1) - 1)
  probs = np.asarray(jax.nn.softmax(P.warp(logits[:, -1], cfg), -1))[0]
  support = np.nonzero(probs > 0)[0]
  assert 1 < len(support) <= 6
  counts = np.bincount(np.asarray(out.tokens_BxN[:, 0]), minlength=probs.size)
  assert counts[probs == 0].sum() == 0  # never outside the filtered support
  expected = probs[support] * n
  chi2 = float((((counts[support] - expected) ** 2) / expected).sum())
  assert chi2 < 25.0, (counts[support], expected)  # df <= 5: p < 1e-4 if wrong


@pytest.mark.parametrize("kind", ["godel", "dialogpt", "blenderbot"])
def test_returned_logprobs_equal_teacher_forced(models, kind, ed_test):
  _, loaded, _ = models[kind]
  batch = hf.real_batch(loaded.fmt, ed_test, n=4, offset=20)
  cfg, out = _ours(loaded, batch, {"max_new_tokens": 10, "sample": True, "top_k": 0})
  tokens, mask = out.tokens_BxN, out.mask_BxN
  if loaded.model.is_encoder_decoder:
    target = np.concatenate([np.full((4, 1), cfg.decoder_start_token_id), tokens], 1)
    target_mask = np.concatenate([np.ones((4, 1), np.int32), mask], 1)
  else:
    target, target_mask = tokens, mask
  fwd = loaded.model.forward(loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
                             jnp.asarray(target), jnp.asarray(target_mask))
  logp = np.asarray(jax.nn.log_softmax(fwd.logits_BxTxV, -1))
  logp = np.take_along_axis(logp, target[..., None], -1)[..., 0]
  logp = logp[:, 1:] if loaded.model.is_encoder_decoder else logp
  m = mask.astype(bool)
  np.testing.assert_allclose(out.logprobs_BxN[m], logp[m], atol=1e-4)
  assert (out.logprobs_BxN[~m] == 0).all()


def test_rows_do_not_depend_on_batch_mates_and_compile_once(models, ed_test):
  _, loaded, _ = models["godel"]
  cfg = GenerationConfig(max_new_tokens=8, sample=True, eos_token_id=1, pad_token_id=0)
  b1 = hf.real_batch(loaded.fmt, ed_test, n=4, offset=0)
  b2 = hf.real_batch(loaded.fmt, ed_test, n=4, offset=100)
  # Row 0 of b1 next to different batch-mates (same shapes: same bucket).
  mixed_ids = np.concatenate([b1.context_ids_BxC[:1], b2.context_ids_BxC[1:]])
  mixed_mask = np.concatenate([b1.context_mask_BxC[:1], b2.context_mask_BxC[1:]])
  assert b1.context_ids_BxC.shape == b2.context_ids_BxC.shape
  run = lambda ids, mask, rows: np.asarray(generate_ids(
      loaded.model, loaded.params, jnp.asarray(ids), jnp.asarray(mask), cfg,
      jax.random.PRNGKey(5), jnp.asarray(rows)).tokens_BxN)
  before = generate_ids._cache_size()  # pylint: disable=protected-access
  a = run(b1.context_ids_BxC, b1.context_mask_BxC, [0, 1, 2, 3])
  b = run(mixed_ids, mixed_mask, [0, 11, 12, 13])
  c = run(b2.context_ids_BxC, b2.context_mask_BxC, [20, 21, 22, 23])
  np.testing.assert_array_equal(a[0], b[0])
  assert generate_ids._cache_size() - before == 1  # pylint: disable=protected-access
  assert not np.array_equal(a, c)


@pytest.mark.parametrize("k", [1, 8, 50])
def test_fast_top_k_equals_lax_top_k_including_ties_and_masked_scores(k):
  from empathy_jax.generation.processors import fast_top_k

  rng = np.random.default_rng(k)
  # Few distinct values (many ties), banned tokens at -inf, a row length not a chunk multiple.
  x = rng.integers(0, 40, size=(6, 32102)).astype(np.float32)
  x[rng.random(x.shape) < 0.3] = -np.inf
  x[0] = -np.inf
  x[0, [5, 70000 % 32102, 32101]] = 1.0
  values, ids = fast_top_k(jnp.asarray(x), k)
  ref_values, ref_ids = jax.lax.top_k(jnp.asarray(x), k)
  np.testing.assert_array_equal(values, ref_values)
  np.testing.assert_array_equal(ids, ref_ids)


def test_plain_greedy_reads_vocab_major_logits_as_argmax_and_log_softmax():
  from empathy_jax.generation.search import _greedy_vocab_major

  rng = np.random.default_rng(0)
  x = rng.integers(0, 30, size=(1000, 6)).astype(np.float32)  # 1000: not whole 128-row blocks
  x[:, 1] = -np.inf
  x[[3, 999], 1] = 5.0  # a tie between the first and the (partial) last block
  x[990:, 2] = 100.0  # maximum only in the partial last block
  x[:, 3] = -np.inf  # nothing allowed: argmax's answer, index 0
  tokens, logprobs = _greedy_vocab_major(jnp.asarray(x))
  np.testing.assert_array_equal(tokens, np.argmax(x, axis=0))
  ref = np.asarray(jax.nn.log_softmax(jnp.asarray(x), axis=0))[np.argmax(x, axis=0), range(6)]
  finite = np.isfinite(ref)
  assert finite.sum() == 5
  np.testing.assert_allclose(np.asarray(logprobs)[finite], ref[finite], atol=1e-6)


def test_packed_generation_compiles_once_per_plan_size(models, ed_test):
  _, loaded, _ = models["godel"]
  cfg = GenerationConfig(max_new_tokens=4, eos_token_id=1, pad_token_id=0)
  batch = hf.real_batch(loaded.fmt, ed_test, n=8, offset=0)
  order = np.array([3, 1, 7, 0, 5, 2, 6, 4])  # the same lengths, placed differently
  before = generate_ids._cache_size()  # pylint: disable=protected-access
  outs = []
  for perm in (np.arange(8), order):
    ids, mask = batch.context_ids_BxC[perm], batch.context_mask_BxC[perm]
    plan = encoder_plan(loaded.model, mask)
    assert plan is not None
    outs.append(np.asarray(generate_ids(loaded.model, loaded.params, jnp.asarray(ids),
                                        jnp.asarray(mask), cfg, jax.random.PRNGKey(0),
                                        jnp.arange(8), plan).tokens_BxN))
  assert generate_ids._cache_size() - before == 1  # pylint: disable=protected-access
  np.testing.assert_array_equal(outs[1], outs[0][order])
