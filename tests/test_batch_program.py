"""test.py's per-batch programs: chunked teacher-forced target log-likelihood against
transformers' PyTorch model, generation inside the fused program against `generate_ids`, the
encoder-decoder split (contexts encoded, keys padded to a wider width, then decoded and
scored) against transformers' greedy tokens and log-likelihoods, and perplexity grouped as the
original's dataset-order batches."""

import hf_fixtures as hf
import jax
import numpy as np
import pytest

from empathy_jax.evaluation.batch_program import (encode_for_decoding, generate_and_score,
                                                  target_nll)
from empathy_jax.evaluation.testing import decode_width, decode_widths, original_perplexity
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate_ids
from empathy_jax.models.loading import load_model


def _with_long_targets(batch, chunk):
  """The batch's targets with row 0 longer than two chunks, so the chunk loop runs more than
  once, in a width that is not a multiple of the chunk."""
  t_ids, t_mask = batch.target_ids_BxT, batch.target_mask_BxT
  width = max(t_ids.shape[1], 3 * chunk) + 3
  ids = np.zeros((t_ids.shape[0], width), np.int32)
  mask = np.zeros_like(ids)
  ids[:, :t_ids.shape[1]], mask[:, :t_ids.shape[1]] = t_ids, t_mask
  length = max(int(t_mask[0].sum()), 2 * chunk + 3)
  ids[0, 1:length] = np.arange(100, 99 + length)
  mask[0, :length] = 1
  return ids, mask


@pytest.mark.parametrize("kind", ["godel", "dialogpt"])
def test_target_nll_matches_pytorch(kind, tmp_path, ed_test):
  torch_model, fmt = hf.save_torch_model(kind, str(tmp_path))
  loaded = load_model(str(tmp_path))
  params = jax.device_put(loaded.params)
  batch = hf.real_batch(fmt, ed_test, n=4)
  chunk = 4
  t_ids, t_mask = _with_long_targets(batch, chunk)
  full = batch.__class__(batch.context_ids_BxC, batch.context_mask_BxC, t_ids, t_mask,
                         batch.example_index_B)
  logits, _ = hf.torch_logits(torch_model, full, loaded.model.is_encoder_decoder)
  logp = hf.torch_target_logprobs(logits, full)
  scored = t_mask.copy()
  if loaded.model.is_encoder_decoder:
    scored[:, 0] = 0  # the decoder start token is not predicted
  want_nll, want_count = -(logp * scored).sum(1), scored.sum(1)
  nll, count = jax.jit(lambda p, *a: target_nll(loaded.model, p, *a, chunk=chunk, head_rows=8))(
      params, batch.context_ids_BxC, batch.context_mask_BxC, t_ids, t_mask)
  np.testing.assert_allclose(np.asarray(count), want_count)
  np.testing.assert_allclose(np.asarray(nll), want_nll, rtol=2e-5)
  assert want_count[0] >= 2 * chunk  # the decoder loop ran past its first chunk
  assert want_count.sum() > 2 * 8  # and the vocabulary projection over several blocks


def test_fused_program_generates_as_generate_ids(tmp_path, ed_test):
  _, fmt = hf.save_torch_model("godel", str(tmp_path))
  loaded = load_model(str(tmp_path))
  params = jax.device_put(loaded.params)
  batch = hf.real_batch(fmt, ed_test, n=4)
  gen = resolve({"max_new_tokens": 6, "sample": True, "top_k": 20}, {}, loaded.model.cfg)
  rng, rows = jax.random.PRNGKey(3), np.arange(4)
  out, _, _ = generate_and_score(loaded.model, params, batch.context_ids_BxC,
                                 batch.context_mask_BxC, batch.target_ids_BxT,
                                 batch.target_mask_BxT, gen, rng, rows)
  want = generate_ids(loaded.model, params, batch.context_ids_BxC, batch.context_mask_BxC, gen,
                      rng, rows)
  np.testing.assert_array_equal(np.asarray(out.tokens_BxN), np.asarray(want.tokens_BxN))
  np.testing.assert_allclose(np.asarray(out.logprobs_BxN), np.asarray(want.logprobs_BxN),
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["godel", "blenderbot"])
def test_contexts_padded_to_a_decoding_width_give_transformers_tokens_and_nll(
    kind, tmp_path, ed_test):
  """What test.py runs for encoder-decoder models: `encode_for_decoding` pads the contexts'
  cross-attention keys to a width shared with longer buckets, and `generate_and_score` decodes
  and scores from them: transformers' greedy tokens and target log-likelihoods, unpadded."""
  import torch

  torch_model, fmt = hf.save_torch_model(kind, str(tmp_path))
  loaded = load_model(str(tmp_path))
  params = jax.device_put(loaded.params)
  batch = hf.real_batch(fmt, ed_test, n=4, offset=11)
  logp = hf.torch_target_logprobs(hf.torch_logits(torch_model, batch, True)[0], batch)
  scored = batch.target_mask_BxT.copy()
  scored[:, 0] = 0  # the decoder start token is not predicted
  t = lambda x: torch.from_numpy(np.asarray(x)).long()
  with torch.no_grad():
    want_tokens = torch_model.generate(
        input_ids=t(batch.context_ids_BxC), attention_mask=t(batch.context_mask_BxC),
        max_new_tokens=7, num_beams=1, do_sample=False).numpy()[:, 1:]
  gen = resolve({"max_new_tokens": 7, "beam_width": 1, "sample": False}, {},
                loaded.model.cfg)
  c = batch.context_ids_BxC.shape[1]
  for width in (c, c + 13):
    cross, ids, mask = encode_for_decoding(loaded.model, params, batch.context_ids_BxC,
                                           batch.context_mask_BxC, width, gen.pad_token_id)
    assert ids.shape == mask.shape == (4, width) and int(mask[:, c:].sum()) == 0
    out, nll, count = generate_and_score(
        loaded.model, params, ids, mask, batch.target_ids_BxT, batch.target_mask_BxT, gen,
        jax.random.PRNGKey(0), np.arange(4), cross)
    tokens = np.asarray(out.tokens_BxN)
    np.testing.assert_array_equal(tokens[:, :want_tokens.shape[1]], want_tokens)
    np.testing.assert_allclose(np.asarray(count), scored.sum(1))
    np.testing.assert_allclose(np.asarray(nll), -(logp * scored).sum(1), rtol=2e-5)


def test_decode_widths_share_rare_buckets_and_keep_frequent_ones():
  # test.py's first 1,024 test rows: no bucket has 24 batches; widths capped at the longest.
  run = [48] * 3 + [64] * 5 + [96] * 12 + [128] * 8 + [192] * 3 + [384]
  widths = decode_widths(run)
  assert widths == (128, 256, 384)
  assert [decode_width(c, widths) for c in (48, 96, 128, 192, 384)] == [128, 128, 128, 256, 384]
  # The whole split: buckets used by 24 batches or more decode at their own width.
  run = [48] * 15 + [64] * 35 + [96] * 57 + [128] * 37 + [192] * 17 + [256] * 2 + [384]
  widths = decode_widths(run)
  assert widths == (64, 96, 128, 256, 384)
  assert [decode_width(c, widths) for c in (48, 64, 96, 192)] == [64, 64, 96, 256]
  assert decode_widths([48, 64]) == (64,)  # short runs pad no further than their longest
  assert decode_width(2048, decode_widths([2048])) == 2048  # past the widths: its own


def test_original_perplexity_groups_examples_as_dataset_order_batches():
  rng = np.random.default_rng(0)
  count = rng.integers(0, 9, 11).astype(float)
  count[4:8] = 0  # a whole batch without scored tokens is left out, as the original skips it
  nll = rng.uniform(0.5, 3.0, 11) * count
  # The original: per batch of 4 rows in dataset order, the mean token loss (HF's mean over
  # non-ignored labels); then exp of the mean over batches.
  batch_means = []
  for s in (0, 4, 8):
    if count[s:s + 4].sum():
      batch_means.append(nll[s:s + 4].sum() / count[s:s + 4].sum())
  assert len(batch_means) == 2
  want = np.exp(sum(batch_means) / len(batch_means))
  assert original_perplexity(nll, count, 4) == pytest.approx(want, rel=1e-12)
  assert original_perplexity(nll, count, 11) == pytest.approx(np.exp(nll.sum() / count.sum()))
