"""PPO's clipped policy and value losses and the entropy bonus, as functions of arrays over
response tokens (means over masked-in tokens of the whole batch)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from empathy_jax.training.ppo.advantages import masked_mean


def policy_loss(logp_BxT, old_logp_BxT, advantages_BxT, mask_BxT, clip_epsilon: float):
  """(loss, stats): max(-A r, -A clip(r, 1-eps, 1+eps)) with r = exp(logp - old_logp)."""
  ratio = jnp.exp(logp_BxT - old_logp_BxT)
  unclipped = -advantages_BxT * ratio
  clipped = -advantages_BxT * jnp.clip(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
  loss = masked_mean(jnp.maximum(unclipped, clipped), mask_BxT)
  stats = {"clip_fraction": masked_mean((clipped > unclipped).astype(jnp.float32), mask_BxT),
           "ratio_mean": masked_mean(ratio, mask_BxT),
           "approx_kl": masked_mean(0.5 * jnp.square(logp_BxT - old_logp_BxT), mask_BxT)}
  return loss, stats


def value_loss(values_BxT, old_values_BxT, returns_BxT, mask_BxT, value_clip: float | None):
  """(loss, clip fraction): 0.5 * max((V - R)^2, (V_clipped - R)^2), V_clipped within
  `value_clip` of the rollout's values (no clipping when `value_clip` is None or 0)."""
  unclipped = jnp.square(values_BxT - returns_BxT)
  if not value_clip:
    return 0.5 * masked_mean(unclipped, mask_BxT), jnp.float32(0.0)
  v_clipped = old_values_BxT + jnp.clip(values_BxT - old_values_BxT, -value_clip, value_clip)
  clipped = jnp.square(v_clipped - returns_BxT)
  loss = 0.5 * masked_mean(jnp.maximum(unclipped, clipped), mask_BxT)
  return loss, masked_mean((clipped > unclipped).astype(jnp.float32), mask_BxT)


def entropy(logits_BxTxV, mask_BxT):
  """Mean over masked-in tokens of the policy's entropy at each token."""
  logp = jax.nn.log_softmax(logits_BxTxV.astype(jnp.float32), axis=-1)
  per_token = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
  return masked_mean(per_token, mask_BxT)
