"""Pairwise reward losses: the original's graded loss for one context, its batched form over
several contexts (rated pairs as index arrays with a mask, no Python loop over pairs), and the
Bradley-Terry loss of TRL's RewardTrainer.

Ratings are the original's `[a, b, factor]` rows: `factor < 0` means response a is better,
`factor > 0` that b is, `0` a tie; |factor| grades how much better.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _margins(r_a, r_b, factor):
  """(d, is_tie): d = r_a - r_b when a is better (factor < 0), r_b - r_a otherwise."""
  return jnp.where(factor < 0, r_a - r_b, r_b - r_a), factor == 0


def _pair_losses(r_a, r_b, factor):
  """The original's loss per pair: (r_a - r_b)^2 for a tie, else -sqrt|factor| log sigmoid(d)."""
  d, tie = _margins(r_a, r_b, factor)
  graded = -jnp.sqrt(jnp.abs(factor)) * jax.nn.log_sigmoid(d)
  return jnp.where(tie, jnp.square(r_a - r_b), graded), d, tie


def original_pairwise_loss(rewards_R, ratings_Px3):
  """(loss, accuracy) of one context exactly as the original computes them: the mean over all
  its rated pairs of the per-pair loss, and the share of non-tie pairs whose preferred
  response gets the higher reward (d > 0); accuracy is NaN when every pair is a tie (the
  original would divide by zero)."""
  rewards = jnp.asarray(rewards_R, jnp.float32)
  ratings = jnp.asarray(ratings_Px3, jnp.float32)
  a, b = ratings[:, 0].astype(jnp.int32), ratings[:, 1].astype(jnp.int32)
  losses, d, tie = _pair_losses(rewards[a], rewards[b], ratings[:, 2])
  decided = jnp.sum(~tie)
  correct = jnp.sum((d > 0) & ~tie)
  accuracy = jnp.where(decided > 0, correct / jnp.maximum(decided, 1), jnp.nan)
  return jnp.mean(losses), accuracy


def pairwise_terms(rewards_BxR, pair_a_BxP, pair_b_BxP, factor_BxP, pair_mask_BxP,
                   loss: str = "original", margin: float = 0.0, center_coef: float = 0.0):
  """Per-context sums for a batch of contexts (each with up to R responses and P rated pairs;
  `pair_mask` marks real pairs). Returns a dict of [B] arrays:

  loss: the context's mean pair loss (0 for a context without pairs, see `has_pairs`);
  has_pairs, correct, decided (non-tie pairs), tie_sq_sum (sum of squared tie differences),
  ties. The batch loss is the mean of `loss` over contexts with pairs: with batch size 1 it is
  the original's loss.

  loss="bradley_terry": -log sigmoid(d - margin) over decided pairs (ties carry no preference
  and are left out), plus `center_coef` * mean((r_a + r_b)^2) as TRL's reward centring."""
  rewards = jnp.asarray(rewards_BxR, jnp.float32)
  mask = jnp.asarray(pair_mask_BxP, jnp.float32)
  take = lambda idx: jnp.take_along_axis(rewards, jnp.asarray(idx, jnp.int32), axis=1)
  r_a, r_b = take(pair_a_BxP), take(pair_b_BxP)
  factor = jnp.asarray(factor_BxP, jnp.float32)
  original, d, tie = _pair_losses(r_a, r_b, factor)
  real = mask > 0
  decided = real & ~tie
  if loss == "original":
    per_pair, counted = original, mask
  elif loss == "bradley_terry":
    per_pair = -jax.nn.log_sigmoid(d - margin)
    if center_coef:
      per_pair = per_pair + center_coef * jnp.square(r_a + r_b)
    counted = decided.astype(jnp.float32)
  else:
    raise ValueError(f"unknown reward loss {loss!r}: original or bradley_terry")
  n = jnp.sum(counted, axis=1)
  tie_diff = jnp.where(real & tie, jnp.square(r_a - r_b), 0.0)
  return {
      "loss": jnp.sum(per_pair * counted, axis=1) / jnp.maximum(n, 1.0),
      "has_pairs": (n > 0).astype(jnp.float32),
      "correct": jnp.sum(((d > 0) & decided).astype(jnp.float32), axis=1),
      "decided": jnp.sum(decided.astype(jnp.float32), axis=1),
      "tie_sq_sum": jnp.sum(tie_diff, axis=1),
      "ties": jnp.sum((real & tie).astype(jnp.float32), axis=1),
  }


def batch_loss(terms) -> jax.Array:
  """The mean over contexts with pairs of their mean pair loss (0 for a batch of none)."""
  return jnp.sum(terms["loss"] * terms["has_pairs"]) / jnp.maximum(
      jnp.sum(terms["has_pairs"]), 1.0)
