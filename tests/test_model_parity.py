"""Flax models against transformers' PyTorch models on padded batches of real dataset rows."""

import numpy as np
import pytest

import hf_fixtures as hf
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loading import load_model

# T5: relu (v1.0, tied, rescaled), gated-gelu with a deeper decoder, and v1.1 as transformers 5
# saves it (tied, scale_decoder_outputs false) with a deeper encoder.
KINDS = ["godel", "godel_gated", "godel_v11", "dialogpt", "blenderbot"]


def _compare(ours, theirs, mask, atol=1e-4):
  m = np.asarray(mask).astype(bool)
  np.testing.assert_allclose(np.asarray(ours)[m], theirs[m], atol=atol, rtol=0)


# Scanned layers are checked against the unrolled ones on every family in
# test_model_options.py; here against transformers on the uneven-depth T5 and on GPT-2.
@pytest.mark.parametrize("kind, scan", [(k, False) for k in KINDS]
                         + [("godel_v11", True), ("dialogpt", True)])
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
  # Probabilities, not only logits' argmax: the log-probs the losses and perplexity use.
  scores = loaded.model.target_logprobs(loaded.params, batch.context_ids_BxC,
                                        batch.context_mask_BxC, batch.target_ids_BxT,
                                        batch.target_mask_BxT)
  _compare(scores.logprobs_BxT, hf.torch_target_logprobs(logits, batch), out.loss_mask_BxT)


def test_t5_v11_untied_head_as_transformers_4_saved_it(tmp_path, ed_test):
  """`tie_word_embeddings: false` and a separate lm_head.weight, no rescaling (GODEL v1.1 on
  the hub). transformers 5 ties every T5 head, so the reference is its decoder's final hidden
  state times the separate head, computed here."""
  import json

  import torch
  from safetensors.torch import load_file, save_file

  model, fmt = hf.save_torch_model("godel_v11", str(tmp_path))
  config = json.load(open(tmp_path / "config.json"))
  config.pop("scale_decoder_outputs")
  config["tie_word_embeddings"] = False
  json.dump(config, open(tmp_path / "config.json", "w"))
  state = load_file(str(tmp_path / "model.safetensors"))
  head = torch.randn(state["shared.weight"].shape, generator=torch.Generator().manual_seed(1))
  save_file({**state, "lm_head.weight": head}, str(tmp_path / "model.safetensors"))

  loaded = load_model(str(tmp_path))
  assert not loaded.model.cfg.tie_lm_head and not loaded.model.cfg.scale_decoder_outputs
  batch = hf.real_batch(fmt, ed_test, n=6, offset=10)
  _, hidden = hf.torch_logits(model, batch, True)
  reference = np.einsum("btd,vd->btv", hidden, head.numpy())
  reference = np.concatenate([np.zeros_like(reference[:, :1]), reference[:, :-1]], axis=1)
  out = loaded.model.forward(loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
                             batch.target_ids_BxT, batch.target_mask_BxT)
  _compare(out.logits_BxTxV, reference, out.loss_mask_BxT)
  scores = loaded.model.target_logprobs(loaded.params, batch.context_ids_BxC,
                                        batch.context_mask_BxC, batch.target_ids_BxT,
                                        batch.target_mask_BxT)
  _compare(scores.logprobs_BxT, hf.torch_target_logprobs(reference, batch), out.loss_mask_BxT)


@pytest.mark.parametrize("kind", ["godel", "godel_v11"])
def test_t5_export_reads_back_as_the_same_function(kind, tmp_path, ed_test):
  """Our export's config.json, read by transformers 5, gives the same log-probs."""
  import transformers

  from empathy_jax.models.loading import export_hf

  hf.save_torch_model(kind, str(tmp_path / "src"))
  loaded = load_model(str(tmp_path / "src"))
  export_hf(loaded, str(tmp_path / "out"))
  again = transformers.T5ForConditionalGeneration.from_pretrained(str(tmp_path / "out")).eval()
  assert again.config.scale_decoder_outputs == loaded.model.cfg.scale_decoder_outputs
  batch = hf.real_batch(loaded.fmt, ed_test, n=4, offset=3)
  logits, _ = hf.torch_logits(again, batch, True)
  scores = loaded.model.target_logprobs(loaded.params, batch.context_ids_BxC,
                                        batch.context_mask_BxC, batch.target_ids_BxT,
                                        batch.target_mask_BxT)
  _compare(scores.logprobs_BxT, hf.torch_target_logprobs(logits, batch), scores.loss_mask_BxT)
