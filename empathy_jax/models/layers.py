"""Building blocks shared by the three architectures (Flax Linen).

Why Linen: parameters are a plain pytree, so the train step is an ordinary pure function
`jax.jit(step)(params, opt_state, batch)` with explicit in/out shardings and donation; logical
axis metadata (`nn.with_logical_partitioning`) maps parameters to mesh axes through one rule table;
`nn.scan`/`nn.remat` give layer scanning and rematerialisation without touching the math. NNX would
need `nnx.split`/`merge` around every step for the same result (see ../shared/STYLE.md).

Shapes use nanodo's suffixes: B batch, T query length, S key length, H heads, K head dim,
D model width, F feed-forward width, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from empathy_jax.models import packing

Dtype = Any
NEG_INF = -1e30  # finite, so fully masked rows (filler rows) give a uniform softmax, not NaN


def param_init(init: Callable, axes: tuple[str | None, ...]) -> Callable:
  return nn.with_logical_partitioning(init, axes)


def normal(std: float) -> Callable:
  return nn.initializers.normal(stddev=std)


class DenseGeneral(nn.Module):
  """x @ kernel (+ bias) with logical axes on the kernel; params float32, compute in dtype."""

  features: tuple[int, ...]
  kernel_axes: tuple[str | None, ...]
  contract: int = 1  # number of trailing input axes contracted
  use_bias: bool = False
  init_std: float = 0.02
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    in_shape = x.shape[-self.contract:]
    kernel = self.param("kernel", param_init(normal(self.init_std), self.kernel_axes),
                        (*in_shape, *self.features), jnp.float32)
    x = x.astype(self.dtype)
    kernel = kernel.astype(self.dtype)
    # One 2-D matmul. As an N-D einsum, its weight gradient contracts two leading axes, and
    # XLA:CPU then transposes the [tokens, features] cotangent first (a strided copy, slow at
    # power-of-two widths: ~20% of a GODEL_TINY train step); the 2-D form needs no copy.
    lead = x.shape[:x.ndim - self.contract]
    y = jnp.dot(x.reshape(math.prod(lead), -1), kernel.reshape(math.prod(in_shape), -1))
    y = y.reshape(*lead, *self.features)
    if self.use_bias:
      bias = self.param("bias", param_init(nn.initializers.zeros, self.kernel_axes[-len(
          self.features):]), self.features, jnp.float32)
      y = y + bias.astype(self.dtype)
    return y


class Embed(nn.Module):
  num_embeddings: int
  features: int
  axes: tuple[str, str] = ("vocab", "embed")
  init_std: float = 1.0
  dtype: Dtype = jnp.float32

  def setup(self):
    self.embedding = self.param("embedding", param_init(normal(self.init_std), self.axes),
                                (self.num_embeddings, self.features), jnp.float32)

  def __call__(self, ids):
    return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)

  def attend(self, x, vocab_major: bool = False):
    """Projects hidden states onto the (tied) vocabulary: logits in float32, ...xV, or with
    `vocab_major` Vx(all leading positions) -- the embedding times the transposed states, which
    reads the embedding in place: with few positions (a decoding step) ~1.7x faster on CPU
    than `states @ embedding.T`, whose kernel repacks the whole matrix on every call."""
    x2 = x.reshape(-1, x.shape[-1]).astype(self.dtype)  # 2-D: see DenseGeneral
    embedding = self.embedding.astype(self.dtype)
    if vocab_major:
      return jnp.dot(embedding, x2.T).astype(jnp.float32)
    logits = jnp.einsum("nd,vd->nv", x2, embedding)
    return logits.astype(jnp.float32).reshape(*x.shape[:-1], -1)


# A decoder call whose `shared` holds this key (its value is None) only stores each layer's
# cross-attention keys/values of `shared["encoder_states"]` in the cache. A key, not a flag
# value: dict keys are pytree structure, so the mode stays static under nn.scan and nn.remat.
CROSS_CACHE_ONLY = "cross_cache_only"


def cross_cache_entry(cache, k_BxHxSxK, v_BxHxSxK):
  """A decoder layer's cache with its cross-attention part replaced (dtype kept)."""
  cross = KVCache(k_BxHxSxK.astype(cache["cross"].k.dtype),
                  v_BxHxSxK.astype(cache["cross"].v.dtype))
  return {"self": cache["self"], "cross": cross}


class EncoderDecoderCalls:
  """The calls T5 and BlenderBot share on top of their `encode`, `decode` and `logits`."""

  def fill_cross_cache(self, encoder_states_BxSxD, cache):
    """`cache` with every decoder layer's cross-attention keys/values of the encoder states:
    what the first decoding step would store, without running the decoder on a token."""
    x = jnp.zeros((encoder_states_BxSxD.shape[0], 1, encoder_states_BxSxD.shape[-1]),
                  encoder_states_BxSxD.dtype)
    _, cache = self.decoder_stack(x, {"encoder_states": encoder_states_BxSxD,
                                      CROSS_CACHE_ONLY: None}, cache)
    return cache

  def decoder_hidden(self, ids_BxS, mask_BxS, dec_ids_BxT, dec_mask_BxT, deterministic=True,
                     plan=None):
    """Last decoder hidden states of a teacher-forced (context, target) batch; with a
    `packing.PackingPlan` the contexts are encoded packed (the same states, less work)."""
    if plan is None:
      enc = self.encode(ids_BxS, mask_BxS, deterministic)
    else:
      ids, mask, positions, segments = plan.encoder_inputs(ids_BxS, mask_BxS)
      enc = plan.unpack(self.encode(ids, mask, deterministic, positions, segments), mask_BxS)
    hidden, _ = self.decode(dec_ids_BxT, dec_mask_BxT, enc, mask_BxS,
                            deterministic=deterministic)
    return hidden

  def __call__(self, ids_BxS, mask_BxS, dec_ids_BxT, dec_mask_BxT, deterministic=True):
    hidden = self.decoder_hidden(ids_BxS, mask_BxS, dec_ids_BxT, dec_mask_BxT, deterministic)
    return self.logits(hidden), hidden


class LayerNorm(nn.Module):
  """Standard layer norm (GPT-2, BlenderBot), computed in float32."""

  epsilon: float = 1e-5
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    scale = self.param("scale", param_init(nn.initializers.ones, ("norm",)), (d,), jnp.float32)
    bias = self.param("bias", param_init(nn.initializers.zeros, ("norm",)), (d,), jnp.float32)
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.epsilon) * scale + bias
    return y.astype(self.dtype)


class RMSNorm(nn.Module):
  """T5's layer norm: no mean subtraction, no bias; variance in float32."""

  epsilon: float = 1e-6
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    d = x.shape[-1]
    scale = self.param("scale", param_init(nn.initializers.ones, ("norm",)), (d,), jnp.float32)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + self.epsilon)
    return (y * scale).astype(self.dtype)


def _mix32(x):
  """lowbias32 (C. Wellons' hash prospector): a full-avalanche uint32 -> uint32 hash."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x21F0AAAD)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x735A2D97)
  return x ^ (x >> 15)


def keep_mask(key, shape: tuple[int, ...], keep_prob: float) -> jax.Array:
  """Bernoulli(keep_prob) mask from a counter-based hash seeded by `key`.

  Why not `jax.random.bernoulli`: on CPU, threefry (and rbg) bits cost ~5 ns each, which made
  dropout ~40% of a GODEL_TINY train step; this hash is two multiply-xorshift rounds per element,
  fused into the surrounding elementwise code. Each call draws its own 64-bit seed from `key`,
  and elements are distinguished by their flat index, so masks stay independent across layers,
  steps and devices (the iota is partitioned like any array under SPMD).
  """
  seed = jax.random.bits(key, (2,), jnp.uint32)
  counter = jnp.arange(math.prod(shape), dtype=jnp.uint32).reshape(shape)
  bits = _mix32(_mix32(counter ^ seed[0]) + seed[1])
  threshold = min(round(keep_prob * 2.0 ** 32), 2 ** 32 - 1)
  return bits < jnp.uint32(threshold)


class Dropout(nn.Module):
  """`nn.Dropout`'s semantics (inverted dropout, "dropout" rng stream) with `keep_mask`."""

  rate: float
  deterministic: bool | None = None

  @nn.compact
  def __call__(self, x, deterministic: bool | None = None):
    deterministic = nn.merge_param("deterministic", self.deterministic, deterministic)
    if deterministic or self.rate == 0.0:
      return x
    if self.rate >= 1.0:
      return jnp.zeros_like(x)
    keep = 1.0 - self.rate
    mask = keep_mask(self.make_rng("dropout"), x.shape, keep)
    return jnp.where(mask, x / jnp.asarray(keep, x.dtype), jnp.zeros_like(x))


def activation(name: str) -> Callable:
  if name == "relu":
    return jax.nn.relu
  if name in ("gelu_new", "gelu_pytorch_tanh", "gelu_fast"):
    return lambda x: jax.nn.gelu(x, approximate=True)
  if name == "gelu":
    return lambda x: jax.nn.gelu(x, approximate=False)
  raise ValueError(f"unsupported activation function {name!r}")


def mask_to_bias(mask) -> jax.Array:
  return jnp.where(mask, 0.0, NEG_INF).astype(jnp.float32)


def encoder_self_bias(mask_BxS, segments_BxS=None) -> jax.Array:
  """Additive self-attention bias over an encoder input: Bx1x1xS from a key mask, or, for rows
  packing several examples (`segments_BxS`: example number + 1, 0 on padding), Bx1xSxS letting
  a token see only its own example's tokens."""
  if segments_BxS is None:
    return mask_to_bias(mask_BxS[:, None, None, :].astype(bool))
  same = segments_BxS[:, None, :, None] == segments_BxS[:, None, None, :]
  return mask_to_bias(same & (segments_BxS[:, None, None, :] > 0))


def keys_values(project_k, project_v, x_BxTxD, kv_BxSxD, cache, cache_index,
                precomputed: bool):
  """(k, v, new self cache) for an attention layer, heads first: cached encoder keys/values
  (`precomputed`), or projections of `kv_BxSxD` (None: self-attention on `x_BxTxD`), written
  into `cache` at `cache_index` when there is one."""
  if precomputed:
    return cache.k, cache.v, cache
  source = x_BxTxD if kv_BxSxD is None else kv_BxSxD
  k, v = heads_first(project_k(source)), heads_first(project_v(source))
  if cache is None:
    return k, v, None
  new_cache = update_cache(cache, k, v, cache_index)
  return new_cache.k, new_cache.v, new_cache


def heads_first(x_BxSxHxK):
  """[B, S, H, K] -> [B, H, S, K]: the layout keys/values are kept in (and cached in), which
  lets XLA's CPU dot read the cache without transposing it every decoding step."""
  return jnp.swapaxes(x_BxSxHxK, 1, 2)


def attention_weights(q_BxTxHxK, k_BxHxSxK, bias, scale: float, dropout: Callable | None):
  scores = jnp.einsum("bthk,bhsk->bhts", q_BxTxHxK, k_BxHxSxK).astype(jnp.float32) * scale
  probs = jax.nn.softmax(scores + bias, axis=-1)
  if dropout is not None:
    probs = dropout(probs)
  return probs


def cross_attention_bias(encoder_mask_BxS):
  """Bx1x1xS additive bias from an encoder mask; `packing.PackedKeys` pass through as is."""
  if isinstance(encoder_mask_BxS, packing.PackedKeys):
    return encoder_mask_BxS
  return mask_to_bias(encoder_mask_BxS[:, None, None, :].astype(bool))


def attention(q_RxTxHxK, k_BxHxSxK, v_BxHxSxK, bias, scale: float, dropout: Callable | None):
  """Scaled dot-product attention; returns RxTxHxK.

  R query rows may share B = R / g key/value rows (rows r = b*g + j, e.g. beam j of example b
  attending to example b's encoder states): their queries are folded into one block of g*T
  queries, so shared keys/values are neither stored nor read g times. `bias` has B or 1 rows,
  or is a `packing.PackedKeys` when the keys/values sit on packed rows.
  """
  r, t = q_RxTxHxK.shape[:2]
  if isinstance(bias, packing.PackedKeys):
    per_example = (r // bias.slot_B.shape[0]) * t
    probs = attention_weights(bias.group_queries(q_RxTxHxK), k_BxHxSxK, bias.bias(per_example),
                              scale, dropout)
    return bias.ungroup(attend(probs, v_BxHxSxK), r)
  g = r // k_BxHxSxK.shape[0]
  if g > 1:
    q_RxTxHxK = q_RxTxHxK.reshape(r // g, g * t, *q_RxTxHxK.shape[2:])
  out = attend(attention_weights(q_RxTxHxK, k_BxHxSxK, bias, scale, dropout), v_BxHxSxK)
  return out.reshape(r, t, *out.shape[2:]) if g > 1 else out


def attend(probs_BxHxTxS, v_BxHxSxK):
  # A plain batched matmul (heads-first output) and then a transpose: asking the einsum for
  # BxTxHxK directly makes XLA:CPU emit a slow strided dot (4x slower on the encoder).
  out = jnp.einsum("bhts,bhsk->bhtk", probs_BxHxTxS.astype(v_BxHxSxK.dtype), v_BxHxSxK)
  return jnp.swapaxes(out, 1, 2)


@dataclasses.dataclass(frozen=True)
class KVCache:
  """Keys and values of one attention layer for decoding; `k`/`v` are BxHxSxK."""

  k: jax.Array
  v: jax.Array


jax.tree_util.register_dataclass(KVCache, data_fields=["k", "v"], meta_fields=[])


def update_cache(cache: KVCache, k_new_BxHxTxK, v_new_BxHxTxK, index) -> KVCache:
  """Writes T new keys/values at slot `index` (the same for every row)."""
  k = jax.lax.dynamic_update_slice_in_dim(cache.k, k_new_BxHxTxK.astype(cache.k.dtype), index,
                                          axis=2)
  v = jax.lax.dynamic_update_slice_in_dim(cache.v, v_new_BxHxTxK.astype(cache.v.dtype), index,
                                          axis=2)
  return KVCache(k, v)


class LayerStack(nn.Module):
  """Applies `num_layers` copies of a block, as a Python loop or an `nn.scan` over layers.

  The block is called as `block(x, shared, cache) -> (x, new_cache)`; `shared` (masks, position
  bias, encoder states) is the same for every layer. `cache` (or None) is a tuple of per-layer
  caches, or with `scan` one cache stacked on a leading layer axis, as are the parameters.
  """

  block_cls: Any
  block_kwargs: dict
  num_layers: int
  scan: bool = False
  remat: bool = False

  @nn.compact
  def __call__(self, x, shared, cache=None, deterministic: bool = True):
    block_cls = self.block_cls
    kwargs = dict(self.block_kwargs, deterministic=deterministic)
    if self.remat:
      block_cls = nn.remat(block_cls, prevent_cse=not self.scan)
    if self.scan:
      scanned = nn.scan(
          block_cls, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
          in_axes=(nn.broadcast, 0), length=self.num_layers,
          metadata_params={nn.PARTITION_NAME: "layers"})
      return scanned(**kwargs, name="layers")(x, shared, cache)
    # Unscanned: the cache is a tuple with one entry per layer, so a decoding step updates
    # each layer's buffers in place instead of re-stacking (copying) every layer's cache.
    new_caches = []
    for i in range(self.num_layers):
      layer_cache = None if cache is None else cache[i]
      x, new = block_cls(**kwargs, name=f"layers_{i}")(x, shared, layer_cache)
      new_caches.append(new)
    return x, (None if cache is None else tuple(new_caches))
