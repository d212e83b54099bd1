"""Scalar heads on the model API's hidden states (reward now, PPO's value head later).

A head is a plain parameter dict `{"kernel": D, "bias": ()}` beside the backbone's parameters,
so the train state holds `{"backbone": ..., "head": ...}` and one optimizer updates both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def init_scalar_head(rng, hidden_size: int) -> dict:
  """torch.nn.Linear(hidden_size, 1)'s initialisation (the original's head): weight and bias
  uniform in +-1/sqrt(hidden_size)."""
  bound = 1.0 / np.sqrt(hidden_size)
  k_rng, b_rng = jax.random.split(rng)
  return {"kernel": np.asarray(jax.random.uniform(k_rng, (hidden_size,), jnp.float32,
                                                  -bound, bound)),
          "bias": np.asarray(jax.random.uniform(b_rng, (), jnp.float32, -bound, bound))}


def abstract(head) -> dict:
  """The head's shapes (the abstract train state's leaves for it, replicated)."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), jnp.float32), head)


def masked_mean(hidden_NxTxD, mask_NxT):
  """Mean over the positions where `mask` is 1 (zeros for a row without any)."""
  mask = jnp.asarray(mask_NxT, jnp.float32)
  total = jnp.einsum("ntd,nt->nd", hidden_NxTxD.astype(jnp.float32), mask)
  return total / jnp.maximum(mask.sum(axis=1, keepdims=True), 1.0)


def scalar_head(head, pooled_NxD, dropout_rate: float = 0.0, deterministic: bool = True,
                dropout_rng=None):
  """linear(dropout(pooled)) -> [N]; inverted dropout as torch.nn.Dropout."""
  x = pooled_NxD.astype(jnp.float32)
  if not deterministic and dropout_rate > 0.0:
    keep = jax.random.bernoulli(dropout_rng, 1.0 - dropout_rate, x.shape)
    x = jnp.where(keep, x / (1.0 - dropout_rate), 0.0)
  return x @ head["kernel"] + head["bias"]
