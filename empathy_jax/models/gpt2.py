"""GPT-2 decoder as DialoGPT uses it, matching transformers' GPT2LMHeadModel.

Learned positions (taken from the attention mask for left-padded prompts, as transformers'
generate does), pre-LN blocks, tied LM head.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from empathy_jax.models import layers as L
from empathy_jax.models.configs import GPT2Config


def positions_from_mask(mask_BxS):
  """Position ids of a left-padded batch: count of real tokens before, pads get 1 (as HF)."""
  pos = jnp.cumsum(mask_BxS, axis=-1) - 1
  return jnp.where(mask_BxS > 0, pos, 1).astype(jnp.int32)


class GPT2Block(nn.Module):
  cfg: GPT2Config
  deterministic: bool

  @nn.compact
  def __call__(self, x, shared, cache):
    cfg = self.cfg
    heads, head_dim = cfg.n_head, cfg.n_embd // cfg.n_head
    drop = lambda y: L.Dropout(cfg.dropout_rate)(y, deterministic=self.deterministic)
    h = L.LayerNorm(cfg.layer_norm_epsilon, cfg.dtype, name="ln_1")(x)
    qkv = L.DenseGeneral((3, heads, head_dim), ("embed", "qkv", "heads", "kv"), use_bias=True,
                         dtype=cfg.dtype, name="c_attn")(h)
    q, k, v = qkv[:, :, 0], L.heads_first(qkv[:, :, 1]), L.heads_first(qkv[:, :, 2])
    new_cache = None
    if cache is not None:
      new_cache = L.update_cache(cache, k, v, shared["cache_index"])
      k, v = new_cache.k, new_cache.v
    dropout = None
    if not self.deterministic and cfg.attn_dropout_rate > 0:
      dropout = L.Dropout(cfg.attn_dropout_rate, deterministic=False)
    h = L.attention(q, k, v, shared["self_bias"], head_dim ** -0.5, dropout)
    h = L.DenseGeneral((cfg.n_embd,), ("heads", "kv", "embed"), contract=2, use_bias=True,
                       init_std=0.02 / (2 * cfg.n_layer) ** 0.5, dtype=cfg.dtype,
                       name="c_proj")(h)
    x = x + drop(h)
    h = L.LayerNorm(cfg.layer_norm_epsilon, cfg.dtype, name="ln_2")(x)
    h = L.DenseGeneral((cfg.n_inner,), ("embed", "mlp"), use_bias=True, dtype=cfg.dtype,
                       name="c_fc")(h)
    h = L.activation(cfg.activation_function)(h)
    h = L.DenseGeneral((cfg.n_embd,), ("mlp", "embed"), use_bias=True,
                       init_std=0.02 / (2 * cfg.n_layer) ** 0.5, dtype=cfg.dtype,
                       name="mlp_c_proj")(h)
    return x + drop(h), new_cache


class GPT2Model(nn.Module):
  """Methods: `decode` (optionally with a KV cache) and `logits` on hidden states."""

  cfg: GPT2Config

  def setup(self):
    cfg = self.cfg
    self.wte = L.Embed(cfg.vocab_size, cfg.n_embd, init_std=0.02, dtype=cfg.dtype)
    self.wpe = L.Embed(cfg.n_positions, cfg.n_embd, axes=("position", "embed"), init_std=0.01,
                       dtype=cfg.dtype)
    self.drop = L.Dropout(cfg.dropout_rate)
    self.h = L.LayerStack(GPT2Block, dict(cfg=cfg), cfg.n_layer, scan=cfg.scan_layers,
                          remat=cfg.remat)
    self.ln_f = L.LayerNorm(cfg.layer_norm_epsilon, cfg.dtype)

  def decode(self, ids_BxT, positions_BxT, key_mask_BxS, cache=None, cache_index=0,
             deterministic: bool = True):
    """Hidden states of T tokens at cache slots `cache_index + t` (keys: slots <= own, masked)."""
    t, s = ids_BxT.shape[1], key_mask_BxS.shape[1]
    query_slot = cache_index + jnp.arange(t)
    causal = jnp.arange(s)[None, :] <= query_slot[:, None]
    bias = L.mask_to_bias(causal[None, None] & key_mask_BxS[:, None, None, :].astype(bool))
    x = self.wte(ids_BxT) + self.wpe(positions_BxT)
    x = self.drop(x, deterministic=deterministic)
    x, cache = self.h(x, {"self_bias": bias, "cache_index": cache_index}, cache, deterministic)
    return self.ln_f(x), cache

  def logits(self, hidden_BxTxD, vocab_major: bool = False):
    """BxTxV logits, or Vx(B*T) with `vocab_major` (see `layers.Embed.attend`)."""
    return self.wte.attend(hidden_BxTxD, vocab_major)

  def input_embeddings(self):
    return self.wte.embedding

  def __call__(self, ids_BxT, mask_BxT, deterministic=True):
    hidden, _ = self.decode(ids_BxT, positions_from_mask(mask_BxT), mask_BxT,
                            deterministic=deterministic)
    return self.logits(hidden), hidden
