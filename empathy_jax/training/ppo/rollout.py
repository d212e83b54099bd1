"""From sampled responses to what PPO's update reads: the teacher-forced batch of a rollout, the
policy's log-probs and entropy on the response tokens, and a critic's values read from the
state that predicts each token.

Response token j of a rollout sits at target position j + 1 for encoder-decoder policies (the
decoder start token first, as generation fed it) and at position j for decoder-only ones (the
response right after the context); `response_view` hides that difference.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from empathy_jax.generation import processors


def stored_as(params, dtype: str):
  """`params` with floating leaves stored in `dtype` (a bfloat16 frozen reference halves its
  memory; the layers cast weights to the run's compute dtype, so only storage changes)."""
  return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x,
                      params)


def sampling_logprobs_exact(model) -> bool:
  """Whether a sampling pass's log-probs equal a teacher-forced replay's up to the last bits
  (float32: a decoding step's cached attention against one full pass); in bfloat16 they would
  differ visibly, and an update's ratio would start away from 1."""
  return jnp.dtype(model.cfg.dtype) == jnp.float32


def teacher_forced(model, tokens_BxN, mask_BxN, start_id: int):
  """(target_ids, target_mask) that replay a rollout: encoder-decoder models read the decoder
  start token generation started from, then the response; decoder-only models the response."""
  tokens = jnp.asarray(tokens_BxN, jnp.int32)
  mask = jnp.asarray(mask_BxN, jnp.int32)
  if not model.is_encoder_decoder:
    return tokens, mask
  b = tokens.shape[0]
  start = jnp.full((b, 1), start_id, jnp.int32)
  return (jnp.concatenate([start, tokens], axis=1),
          jnp.concatenate([jnp.ones((b, 1), jnp.int32), mask], axis=1))


def response_view(model, x_BxT):
  """The response tokens' entries of a per-target-position array."""
  return x_BxT[:, 1:] if model.is_encoder_decoder else x_BxT


def policy_outputs(model, params, ctx_BxC, ctx_mask_BxC, tgt_BxT, tgt_mask_BxT,
                   temperature: float = 1.0, plan=None, top_k: int = 0, top_p: float = 1.0):
  """(log-probs [B, N] of the response tokens under the distribution the rollout sampled from
  -- the policy's logits at `temperature`, truncated to the top-k / top-p set as sampling
  truncates them (`processors.warp`), renormalised --, entropy [B, N] of that distribution).
  Dropout off: the rollout and the update see the same function. The truncation set is a
  function of the logits (no gradient flows through it); a token outside it has log-prob
  -inf, which a rollout's own tokens never are."""
  out = model.forward(params, ctx_BxC, ctx_mask_BxC, tgt_BxT, tgt_mask_BxT, plan=plan)
  logits = response_view(model, out.logits_BxTxV).astype(jnp.float32)
  b, n, v = logits.shape
  warped = processors.warp(logits.reshape(b * n, v),
                           _Warp(temperature, top_k, top_p)).reshape(b, n, v)
  return token_logprobs(warped, response_view(model, jnp.asarray(tgt_BxT)))


def token_logprobs(logits_BxNxV, targets_BxN):
  """(log-probs [B, N] of `targets`, entropy [B, N]) of the distributions `logits` define;
  logits of -inf (outside a truncation set) have probability 0."""
  logp_all = jax.nn.log_softmax(logits_BxNxV, axis=-1)
  logp = jnp.take_along_axis(logp_all, targets_BxN[..., None], axis=-1)[..., 0]
  probs = jnp.exp(logp_all)
  # -inf zeroed before the product: 0 * -inf would be NaN, in the value and in the gradient.
  entropy = -jnp.sum(probs * jnp.where(probs > 0, logp_all, 0.0), axis=-1)
  return logp, entropy


class _Warp(NamedTuple):
  """The fields `processors.warp` reads."""

  temperature: float
  top_k: int
  top_p: float


def values(model, critic, ctx_BxC, ctx_mask_BxC, tgt_BxT, tgt_mask_BxT, plan=None):
  """V(state before response token j) [B, N]: a scalar head on the state that predicts token j
  (`critic` = {"backbone": params of `model`'s architecture, "head": scalar head})."""
  states, _ = model.prediction_states(critic["backbone"], ctx_BxC, ctx_mask_BxC, tgt_BxT,
                                      tgt_mask_BxT, plan=plan)
  return head_values(response_view(model, states), critic["head"])


def head_values(states_BxNxD, head):
  """A scalar value head on states."""
  return (jnp.einsum("bnd,d->bn", states_BxNxD.astype(jnp.float32), head["kernel"])
          + head["bias"])


def zero_value_head(hidden_size: int) -> dict:
  """A value head that starts at 0 (lm-human-preferences' and TRL's practice)."""
  return {"kernel": jnp.zeros((hidden_size,), jnp.float32), "bias": jnp.zeros((), jnp.float32)}
