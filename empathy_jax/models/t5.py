"""T5 encoder-decoder as GODEL uses it, numerically matching transformers' T5ForConditionalGeneration.

Relative position buckets (bias computed once per stack, shared by its layers), RMS layer norm,
relu or gated-gelu feed-forward, tied LM head with the d_model**-0.5 rescaling.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from empathy_jax.models import layers as L
from empathy_jax.models.configs import T5Config


def relative_position_bucket(relative_position, bidirectional: bool, num_buckets: int,
                             max_distance: int):
  """transformers' `T5Attention._relative_position_bucket`, vectorised over any shape."""
  buckets = jnp.zeros_like(relative_position)
  if bidirectional:
    num_buckets //= 2
    buckets += (relative_position > 0).astype(jnp.int32) * num_buckets
    relative_position = jnp.abs(relative_position)
  else:
    relative_position = -jnp.minimum(relative_position, 0)
  max_exact = num_buckets // 2
  is_small = relative_position < max_exact
  large = max_exact + (
      jnp.log(jnp.maximum(relative_position, 1).astype(jnp.float32) / max_exact)
      / math.log(max_distance / max_exact) * (num_buckets - max_exact)).astype(jnp.int32)
  large = jnp.minimum(large, num_buckets - 1)
  return buckets + jnp.where(is_small, relative_position, large)


class RelativePositionBias(nn.Module):
  cfg: T5Config
  bidirectional: bool

  @nn.compact
  def __call__(self, query_pos_T, key_pos_S):
    """1xHxTxS additive bias from query and key positions."""
    cfg = self.cfg
    table = self.param("embedding", L.param_init(L.normal(cfg.d_model ** -0.5),
                                                 ("buckets", "heads")),
                       (cfg.relative_attention_num_buckets, cfg.num_heads), jnp.float32)
    rel = key_pos_S[None, :] - query_pos_T[:, None]
    bucket = relative_position_bucket(rel, self.bidirectional, cfg.relative_attention_num_buckets,
                                      cfg.relative_attention_max_distance)
    return jnp.transpose(table[bucket], (2, 0, 1))[None]


class T5Attention(nn.Module):
  """Self-attention (`kv_BxSxD=None`), cross-attention on `kv_BxSxD`,
  or with `precomputed` cross-attention on keys/values cached from the encoder.

  Returns (output, updated self-attention cache or None, (k, v) as used); `kv_only` returns
  (None, None, (k, v)) of `kv_BxSxD` alone (no query: `x_BxTxD` is not read)."""

  cfg: T5Config
  deterministic: bool

  @nn.compact
  def __call__(self, x_BxTxD, kv_BxSxD, bias, cache: L.KVCache | None = None, cache_index=0,
               precomputed: bool = False, kv_only: bool = False):
    cfg = self.cfg
    inner = cfg.num_heads * cfg.d_kv
    proj = lambda name, std: L.DenseGeneral((cfg.num_heads, cfg.d_kv), ("embed", "heads", "kv"),
                                            init_std=std, dtype=cfg.dtype, name=name)
    k, v, new_cache = L.keys_values(proj("k", cfg.d_model ** -0.5), proj("v", cfg.d_model ** -0.5),
                                    x_BxTxD, kv_BxSxD, cache, cache_index, precomputed)
    if kv_only:
      return None, None, (k, v)
    q = proj("q", (cfg.d_model * cfg.d_kv) ** -0.5)(x_BxTxD)
    dropout = None
    if not self.deterministic and cfg.dropout_rate > 0:
      dropout = L.Dropout(cfg.dropout_rate, deterministic=False)
    out = L.attention(q, k, v, bias, 1.0, dropout)
    out = L.DenseGeneral((cfg.d_model,), ("heads", "kv", "embed"), contract=2,
                         init_std=inner ** -0.5, dtype=cfg.dtype, name="o")(out)
    return out, new_cache, (k, v)


class T5FeedForward(nn.Module):
  cfg: T5Config
  deterministic: bool

  @nn.compact
  def __call__(self, x):
    cfg = self.cfg
    act = L.activation(cfg.dense_act_fn)
    dense = lambda n, axes, std, name: L.DenseGeneral((n,), axes, init_std=std,
                                                      dtype=cfg.dtype, name=name)
    up = ("embed", "mlp")
    if cfg.is_gated_act:
      h = act(dense(cfg.d_ff, up, cfg.d_model ** -0.5, "wi_0")(x))
      h = h * dense(cfg.d_ff, up, cfg.d_model ** -0.5, "wi_1")(x)
    else:
      h = act(dense(cfg.d_ff, up, cfg.d_model ** -0.5, "wi")(x))
    h = L.Dropout(cfg.dropout_rate)(h, deterministic=self.deterministic)
    return dense(cfg.d_model, ("mlp", "embed"), cfg.d_ff ** -0.5, "wo")(h)


class T5Block(nn.Module):
  """One encoder or decoder layer; `shared` holds biases, encoder states and cache index."""

  cfg: T5Config
  deterministic: bool
  is_decoder: bool

  @nn.compact
  def __call__(self, x, shared, cache):
    cfg = self.cfg
    if L.CROSS_CACHE_ONLY in shared:  # `fill_cross_cache`
      _, _, (ck, cv) = T5Attention(cfg, self.deterministic, name="cross_attention")(
          None, shared["encoder_states"], None, kv_only=True)
      return x, L.cross_cache_entry(cache, ck, cv)
    drop = lambda y: L.Dropout(cfg.dropout_rate)(y, deterministic=self.deterministic)
    norm = lambda name: L.RMSNorm(cfg.layer_norm_epsilon, cfg.dtype, name=name)
    h = norm("self_attention_norm")(x)
    h, self_cache, _ = T5Attention(cfg, self.deterministic, name="self_attention")(
        h, None, shared["self_bias"], None if cache is None else cache["self"],
        shared.get("cache_index", 0))
    x = x + drop(h)
    new_cache = None
    if self.is_decoder:
      states = shared.get("encoder_states")
      precomputed = states is None
      h, _, _ = T5Attention(cfg, self.deterministic, name="cross_attention")(
          norm("cross_attention_norm")(x), states, shared["cross_bias"],
          cache["cross"] if precomputed else None, precomputed=precomputed)
      x = x + drop(h)
      if cache is not None:  # the cross part stays as `fill_cross_cache` stored it
        new_cache = {"self": self_cache, "cross": cache["cross"]}
    h = T5FeedForward(cfg, self.deterministic, name="mlp")(norm("mlp_norm")(x))
    x = x + drop(h)
    return x, new_cache


class T5Stack(nn.Module):
  cfg: T5Config
  is_decoder: bool

  @nn.compact
  def __call__(self, x, shared, cache=None, deterministic: bool = True):
    cfg = self.cfg
    n = cfg.num_decoder_layers if self.is_decoder else cfg.num_layers
    x = L.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    x, cache = L.LayerStack(T5Block, dict(cfg=cfg, is_decoder=self.is_decoder), n,
                            scan=cfg.scan_layers, remat=cfg.remat, name="stack")(
                                x, shared, cache, deterministic)
    x = L.RMSNorm(cfg.layer_norm_epsilon, cfg.dtype, name="final_norm")(x)
    x = L.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
    return x, cache


class T5Model(L.EncoderDecoderCalls, nn.Module):
  """Methods: `encode`, `decode` (optionally with a KV cache) and `logits` on decoder states."""

  cfg: T5Config

  def setup(self):
    cfg = self.cfg
    self.shared = L.Embed(cfg.vocab_size, cfg.d_model, init_std=1.0, dtype=cfg.dtype)
    self.encoder_position_bias = RelativePositionBias(cfg, bidirectional=True)
    self.decoder_position_bias = RelativePositionBias(cfg, bidirectional=False)
    self.encoder = T5Stack(cfg, is_decoder=False)
    self.decoder = T5Stack(cfg, is_decoder=True)
    if not cfg.tie_lm_head:
      self.lm_head = L.DenseGeneral((cfg.vocab_size,), ("embed", "vocab"),
                                    init_std=cfg.d_model ** -0.5, dtype=cfg.dtype)

  def encode(self, ids_BxS, mask_BxS, deterministic: bool = True, positions_BxS=None,
             segments_BxS=None):
    """Encoder states. Packed rows (several examples per row) pass `segments_BxS` (see
    `layers.encoder_self_bias`); positions are not needed: the relative bias depends only on
    distances, which within a (contiguous) example are the same in any row."""
    del positions_BxS
    pos = jnp.arange(ids_BxS.shape[1])
    bias = L.encoder_self_bias(mask_BxS, segments_BxS) + self.encoder_position_bias(pos, pos)
    x = self.shared(ids_BxS)
    x, _ = self.encoder(x, {"self_bias": bias}, None, deterministic)
    return x

  def decode(self, ids_BxT, self_key_mask_BxS, encoder_states, encoder_mask_BxSe,
             cache=None, cache_index=0, deterministic: bool = True):
    """Decoder states for T new tokens written at `cache_index` (0 without a cache).

    Keys are the cache slots (S = cache length) or the T inputs themselves; a query at slot
    `cache_index + t` sees key slots <= its own whose `self_key_mask` is set. With a cache and
    `encoder_states=None`, cross-attention uses the encoder keys/values already in the cache.
    """
    t = ids_BxT.shape[1]
    s = self_key_mask_BxS.shape[1]
    query_pos = cache_index + jnp.arange(t)
    key_pos = jnp.arange(s)
    causal = key_pos[None, :] <= query_pos[:, None]
    self_mask = causal[None, None] & self_key_mask_BxS[:, None, None, :].astype(bool)
    self_bias = L.mask_to_bias(self_mask) + self.decoder_position_bias(query_pos, key_pos)
    cross_bias = L.cross_attention_bias(encoder_mask_BxSe)
    shared = {"self_bias": self_bias, "cross_bias": cross_bias,
              "encoder_states": encoder_states, "cache_index": cache_index}
    x = self.shared(ids_BxT)
    return self.decoder(x, shared, cache, deterministic)

  def decoder_stack(self, x, shared, cache):
    return self.decoder(x, shared, cache)

  def logits(self, hidden_BxTxD, vocab_major: bool = False):
    """BxTxV logits, or Vx(B*T) with `vocab_major` (see `layers.Embed.attend`)."""
    cfg = self.cfg
    if cfg.scale_decoder_outputs:
      hidden_BxTxD = hidden_BxTxD * (cfg.d_model ** -0.5)
    if cfg.tie_lm_head:
      return self.shared.attend(hidden_BxTxD, vocab_major)
    logits = self.lm_head(hidden_BxTxD).astype(jnp.float32)
    return logits.reshape(-1, logits.shape[-1]).T if vocab_major else logits

  def input_embeddings(self):
    return self.shared.embedding
