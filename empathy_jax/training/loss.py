"""Losses shared by the trainers."""

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
