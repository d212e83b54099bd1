"""BlenderBot encoder-decoder, matching transformers' BlenderbotForConditionalGeneration.

Pre-LN layers with a final layer norm per stack, embeddings scaled by sqrt(d_model), learned
positions over a plain range (no offset), tied LM head plus `final_logits_bias`.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp

from empathy_jax.models import layers as L
from empathy_jax.models.configs import BlenderbotConfig


class BartAttention(nn.Module):
  """As `T5Attention`: self-attention when `kv_BxSxD` is None, cross-attention on it, or on
  cached encoder keys/values with `precomputed`. Returns (output, self cache, (k, v)), or with
  `kv_only` (None, None, (k, v)) of `kv_BxSxD` alone."""

  cfg: BlenderbotConfig
  num_heads: int
  deterministic: bool

  @nn.compact
  def __call__(self, x_BxTxD, kv_BxSxD, bias, cache=None, cache_index=0,
               precomputed: bool = False, kv_only: bool = False):
    cfg = self.cfg
    head_dim = cfg.d_model // self.num_heads
    proj = lambda name: L.DenseGeneral((self.num_heads, head_dim), ("embed", "heads", "kv"),
                                       use_bias=True, init_std=cfg.init_std, dtype=cfg.dtype,
                                       name=name)
    k, v, new_cache = L.keys_values(proj("k_proj"), proj("v_proj"), x_BxTxD, kv_BxSxD, cache,
                                    cache_index, precomputed)
    if kv_only:
      return None, None, (k, v)
    q = proj("q_proj")(x_BxTxD)
    dropout = None
    if not self.deterministic and cfg.attention_dropout > 0:
      dropout = L.Dropout(cfg.attention_dropout, deterministic=False)
    out = L.attention(q, k, v, bias, head_dim ** -0.5, dropout)
    out = L.DenseGeneral((cfg.d_model,), ("heads", "kv", "embed"), contract=2, use_bias=True,
                         init_std=cfg.init_std, dtype=cfg.dtype, name="out_proj")(out)
    return out, new_cache, (k, v)


class BlenderbotLayer(nn.Module):
  cfg: BlenderbotConfig
  deterministic: bool
  is_decoder: bool

  @nn.compact
  def __call__(self, x, shared, cache):
    cfg = self.cfg
    heads = cfg.decoder_attention_heads if self.is_decoder else cfg.encoder_attention_heads
    if L.CROSS_CACHE_ONLY in shared:  # `fill_cross_cache`
      _, _, (ck, cv) = BartAttention(cfg, heads, self.deterministic, name="encoder_attn")(
          None, shared["encoder_states"], None, kv_only=True)
      return x, L.cross_cache_entry(cache, ck, cv)
    ffn = cfg.decoder_ffn_dim if self.is_decoder else cfg.encoder_ffn_dim
    drop = lambda y, r=cfg.dropout_rate: L.Dropout(r)(y, deterministic=self.deterministic)
    norm = lambda name: L.LayerNorm(1e-5, cfg.dtype, name=name)
    h = norm("self_attn_layer_norm")(x)
    h, self_cache, _ = BartAttention(cfg, heads, self.deterministic, name="self_attn")(
        h, None, shared["self_bias"],
        None if cache is None else cache["self"], shared.get("cache_index", 0))
    x = x + drop(h)
    new_cache = None
    if self.is_decoder:
      states = shared.get("encoder_states")
      precomputed = states is None
      h, _, _ = BartAttention(cfg, heads, self.deterministic, name="encoder_attn")(
          norm("encoder_attn_layer_norm")(x), states, shared["cross_bias"],
          cache["cross"] if precomputed else None, precomputed=precomputed)
      x = x + drop(h)
      if cache is not None:  # the cross part stays as `fill_cross_cache` stored it
        new_cache = {"self": self_cache, "cross": cache["cross"]}
    h = norm("final_layer_norm")(x)
    h = L.DenseGeneral((ffn,), ("embed", "mlp"), use_bias=True, init_std=cfg.init_std,
                       dtype=cfg.dtype, name="fc1")(h)
    h = drop(L.activation(cfg.activation_function)(h), cfg.activation_dropout)
    h = L.DenseGeneral((cfg.d_model,), ("mlp", "embed"), use_bias=True, init_std=cfg.init_std,
                       dtype=cfg.dtype, name="fc2")(h)
    return x + drop(h), new_cache


class BlenderbotModel(L.EncoderDecoderCalls, nn.Module):
  cfg: BlenderbotConfig

  def setup(self):
    cfg = self.cfg
    self.shared = L.Embed(cfg.vocab_size, cfg.d_model, init_std=cfg.init_std, dtype=cfg.dtype)
    self.encoder_positions = L.Embed(cfg.max_position_embeddings, cfg.d_model,
                                     axes=("position", "embed"), init_std=cfg.init_std,
                                     dtype=cfg.dtype)
    self.decoder_positions = L.Embed(cfg.max_position_embeddings, cfg.d_model,
                                     axes=("position", "embed"), init_std=cfg.init_std,
                                     dtype=cfg.dtype)
    self.final_logits_bias = self.param(
        "final_logits_bias", L.param_init(nn.initializers.zeros, ("vocab",)), (cfg.vocab_size,),
        jnp.float32)
    self.embed_scale = math.sqrt(cfg.d_model) if cfg.scale_embedding else 1.0
    self.drop = L.Dropout(cfg.dropout_rate)
    self.encoder_layers = L.LayerStack(BlenderbotLayer, dict(cfg=cfg, is_decoder=False),
                                       cfg.encoder_layers, scan=cfg.scan_layers, remat=cfg.remat)
    self.decoder_layers = L.LayerStack(BlenderbotLayer, dict(cfg=cfg, is_decoder=True),
                                       cfg.decoder_layers, scan=cfg.scan_layers, remat=cfg.remat)
    self.encoder_layer_norm = L.LayerNorm(1e-5, cfg.dtype)
    self.decoder_layer_norm = L.LayerNorm(1e-5, cfg.dtype)

  def _stack(self, x, shared, cache, is_decoder, deterministic):
    x = self.drop(x, deterministic=deterministic)
    if is_decoder:
      x, cache = self.decoder_layers(x, shared, cache, deterministic)
      return self.decoder_layer_norm(x), cache
    x, _ = self.encoder_layers(x, shared, None, deterministic)
    return self.encoder_layer_norm(x), None

  def decoder_stack(self, x, shared, cache):
    return self._stack(x, shared, cache, True, True)

  def encode(self, ids_BxS, mask_BxS, deterministic: bool = True, positions_BxS=None,
             segments_BxS=None):
    """As `T5Model.encode`, packed rows included."""
    pos = jnp.arange(ids_BxS.shape[1])[None] if positions_BxS is None else positions_BxS
    x = self.shared(ids_BxS) * self.embed_scale + self.encoder_positions(pos)
    bias = L.encoder_self_bias(mask_BxS, segments_BxS)
    x, _ = self._stack(x, {"self_bias": bias}, None, False, deterministic)
    return x

  def decode(self, ids_BxT, self_key_mask_BxS, encoder_states, encoder_mask_BxSe, cache=None,
             cache_index=0, deterministic: bool = True):
    """As `T5Model.decode`: T tokens at slots `cache_index + t`; positions are the slots."""
    t, s = ids_BxT.shape[1], self_key_mask_BxS.shape[1]
    query_pos = cache_index + jnp.arange(t)
    causal = jnp.arange(s)[None, :] <= query_pos[:, None]
    self_bias = L.mask_to_bias(causal[None, None] &
                               self_key_mask_BxS[:, None, None, :].astype(bool))
    cross_bias = L.cross_attention_bias(encoder_mask_BxSe)
    x = self.shared(ids_BxT) * self.embed_scale + self.decoder_positions(query_pos)[None]
    shared = {"self_bias": self_bias, "cross_bias": cross_bias,
              "encoder_states": encoder_states, "cache_index": cache_index}
    return self._stack(x, shared, cache, True, deterministic)

  def logits(self, hidden_BxTxD, vocab_major: bool = False):
    """BxTxV logits, or Vx(B*T) with `vocab_major` (see `layers.Embed.attend`)."""
    if vocab_major:
      return self.shared.attend(hidden_BxTxD, True) + self.final_logits_bias.reshape(-1, 1)
    return self.shared.attend(hidden_BxTxD) + self.final_logits_bias

  def input_embeddings(self):
    return self.shared.embedding
