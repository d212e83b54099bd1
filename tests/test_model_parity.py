"""Flax models against transformers' PyTorch models on padded batches of real dataset rows."""

import numpy as np
import pytest

import hf_fixtures as hf
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loading import load_model

KINDS = ["godel", "godel_gated", "dialogpt", "blenderbot"]


def _compare(ours, theirs, mask, atol=1e-4):
  m = np.asarray(mask).astype(bool)
  np.testing.assert_allclose(np.asarray(ours)[m], theirs[m], atol=atol, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scan", [False, True])
def test_logits_and_hidden_match_pytorch(kind, scan, tmp_path, ed_test):
  model, fmt = hf.save_torch_model(kind, str(tmp_path))
  loaded = load_model(str(tmp_path), RuntimeOptions(scan_layers=scan))
  assert loaded.model.family == hf.family_of(kind)
  batch = hf.real_batch(fmt, ed_test, n=6, offset=10)
  if kind == "dialogpt":  # left padding really happens in this batch
    assert (batch.context_mask_BxC[:, 0] == 0).any()
  out = loaded.model.forward(loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
                             batch.target_ids_BxT, batch.target_mask_BxT)
  logits, hidden = hf.torch_logits(model, batch, loaded.model.is_encoder_decoder)
  _compare(out.logits_BxTxV, logits, out.loss_mask_BxT)
  _compare(out.hidden_BxTxD, hidden, batch.target_mask_BxT)
