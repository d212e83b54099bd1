"""Losses shared by the trainers and the evaluation."""

from __future__ import annotations

import jax.numpy as jnp


def nll_sum(logprobs_BxT, weights_BxT):
  """(sum of -log p(target) over weighted tokens, number of weighted tokens), float32.

  The original's loss is the mean over target tokens with pads ignored; returning the sum and
  the count lets gradient accumulation and sharding reproduce that mean exactly. Log-probs come
  from `DialogueModel.target_logprobs`.
  """
  w = weights_BxT.astype(jnp.float32)
  return -jnp.sum(logprobs_BxT * w), jnp.sum(w)


def batch_nll(model, params, batch: dict, deterministic: bool = True, dropout_rng=None):
  """`nll_sum` of a (context, target) batch dict under a `DialogueModel` (SFT, validation,
  perplexity)."""
  scores = model.target_logprobs(params, batch["context_ids_BxC"], batch["context_mask_BxC"],
                                 batch["target_ids_BxT"], batch["target_mask_BxT"],
                                 deterministic=deterministic, dropout_rng=dropout_rng)
  return nll_sum(scores.logprobs_BxT, scores.loss_mask_BxT)
