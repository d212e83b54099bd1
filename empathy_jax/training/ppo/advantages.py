"""Per-token rewards, KL estimators, GAE and whitening: functions of arrays over response
tokens ([B, T] with a mask; masked positions never leak into real ones)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

KL_ESTIMATORS = ("k1", "k3")


def kl_penalty(logp_BxT, ref_logp_BxT, estimator: str = "k1"):
  """Per-token estimate of KL(policy || reference) from log-probs of the sampled tokens:
  k1 = log p - log q (unbiased, can be negative); k3 = (q/p - 1) - log(q/p) (unbiased,
  never negative; Schulman's estimator)."""
  log_ratio = jnp.asarray(logp_BxT, jnp.float32) - jnp.asarray(ref_logp_BxT, jnp.float32)
  if estimator == "k1":
    return log_ratio
  if estimator == "k3":
    return jnp.expm1(-log_ratio) + log_ratio
  raise ValueError(f"unknown KL estimator {estimator!r}: one of {KL_ESTIMATORS}")


def token_rewards(kl_BxT, scores_B, mask_BxT, kl_coef):
  """-kl_coef * KL on every response token, plus the sequence's score on its last real token
  (the original's placement; TRL's and tunix's too)."""
  mask = jnp.asarray(mask_BxT, jnp.float32)
  rewards = -kl_coef * jnp.asarray(kl_BxT, jnp.float32) * mask
  t = mask.shape[1]
  last = t - 1 - jnp.argmax(mask[:, ::-1], axis=1)  # index of the last real token
  has_tokens = mask.sum(1) > 0
  bonus = jax.nn.one_hot(last, t) * jnp.where(has_tokens, scores_B, 0.0)[:, None]
  return rewards + bonus


def gae(rewards_BxT, values_BxT, mask_BxT, gamma: float, lam: float):
  """Generalised advantage estimation by a reverse `lax.scan` over the token axis.

  Only masked-in tokens are steps of the episode: a masked position passes the next real
  token's value and advantage through unchanged and gets advantage 0 itself, so padding
  anywhere (right, left or in between) is skipped. The value after the last real token is 0
  (the episode ends). Returns (advantages, returns = advantages + values), both 0 where masked.
  """
  rewards = jnp.asarray(rewards_BxT, jnp.float32)
  values = jnp.asarray(values_BxT, jnp.float32)
  mask = jnp.asarray(mask_BxT, jnp.float32)

  def step(carry, x):
    next_value, next_adv = carry
    r, v, m = x
    delta = r + gamma * next_value - v
    adv = delta + gamma * lam * next_adv
    real = m > 0
    carry = (jnp.where(real, v, next_value), jnp.where(real, adv, next_adv))
    return carry, jnp.where(real, adv, 0.0)

  zeros = jnp.zeros(rewards.shape[0], jnp.float32)
  _, adv_TxB = jax.lax.scan(step, (zeros, zeros), (rewards.T, values.T, mask.T), reverse=True)
  advantages = adv_TxB.T
  return advantages, (advantages + values) * mask


def masked_mean(x, mask, axis=None):
  mask = jnp.asarray(mask, jnp.float32)
  return jnp.sum(x * mask, axis=axis) / jnp.maximum(jnp.sum(mask, axis=axis), 1.0)


def whiten(x_BxT, mask_BxT, shift_mean: bool = True):
  """(x - mean) / std over the masked-in entries (the mean added back when `shift_mean` is
  False, as TRL does for rewards); masked entries become 0."""
  mask = jnp.asarray(mask_BxT, jnp.float32)
  mean = masked_mean(x_BxT, mask)
  var = masked_mean(jnp.square(x_BxT - mean), mask)
  out = (x_BxT - mean) * jax.lax.rsqrt(var + 1e-8)
  if not shift_mean:
    out = out + mean
  return out * mask
