"""Losses shared by the trainers."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def token_cross_entropy(logits_BxTxV, targets_BxT, weights_BxT):
  """(sum of -log p(target) over weighted tokens, number of weighted tokens), float32.

  The original's loss is the mean over target tokens with pads ignored; returning the sum and
  the count lets gradient accumulation and sharding reproduce that mean exactly.
  """
  logp = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  nll = -jnp.take_along_axis(logp, targets_BxT[..., None].astype(jnp.int32), axis=-1)[..., 0]
  w = weights_BxT.astype(jnp.float32)
  return jnp.sum(nll * w), jnp.sum(w)


def sequence_logprobs(logits_BxTxV, targets_BxT):
  """Per-token log-probabilities of the targets (PPO, scoring)."""
  logp = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, targets_BxT[..., None].astype(jnp.int32), axis=-1)[..., 0]
