"""One model API for every family: the same calls serve SFT loss, reward scoring, PPO
log-probs/values and generation (the t5x "model API" layer).

`forward` takes (context, target) batches and returns, per target token t:
- `logits_BxTxV[:, t]`: the model's distribution for target token t given everything before it
  (for encoder-decoder models row 0 is the start token and is never predicted: see `loss_mask`);
- `hidden_BxTxD[:, t]`: the last hidden state at target token t (decoder output), where reward
  and value heads sit.
Decoder-only models read context (left-padded) + target (right-padded) as one sequence, with
positions from the attention mask.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from empathy_jax import families
from empathy_jax.models import packing
from empathy_jax.models.gpt2 import positions_from_mask
from empathy_jax.models.layers import KVCache
from empathy_jax.models.token_logprobs import target_logprobs


@flax.struct.dataclass
class ModelOutput:
  """Per target token: logits (row t predicts target t), last hidden state, loss mask."""

  logits_BxTxV: jax.Array
  hidden_BxTxD: jax.Array
  loss_mask_BxT: jax.Array


@flax.struct.dataclass
class TargetScores:
  """Per target token: log-probability (0 where `loss_mask` is 0), last hidden state, mask."""

  logprobs_BxT: jax.Array
  hidden_BxTxD: jax.Array
  loss_mask_BxT: jax.Array


@dataclasses.dataclass(frozen=True)
class DialogueModel:
  """A family's Flax module plus the glue that gives every family the same interface."""

  cfg: Any

  @property
  def module(self) -> nn.Module:
    return families.of(self.cfg).module_cls(self.cfg)

  @property
  def family(self) -> str:
    return self.cfg.family

  @property
  def is_encoder_decoder(self) -> bool:
    return self.cfg.is_encoder_decoder

  @property
  def hidden_size(self) -> int:
    return families.of(self.cfg).hidden_size(self.cfg)

  # -- parameters --------------------------------------------------------------------------

  def _dummy_inputs(self):
    ids = jnp.zeros((1, 4), jnp.int32)
    return (ids, ids + 1, ids, ids + 1) if self.is_encoder_decoder else (ids, ids + 1)

  def abstract_params(self):
    """Parameter shapes with logical-axis metadata (`nn.LogicallyPartitioned` leaves)."""
    return _abstract_params(self)

  def init_params(self, rng):
    # One jitted program (cached across runs) instead of one dispatch per initializer.
    init = jax.jit(lambda r: nn.unbox(self.module.init(r, *self._dummy_inputs())["params"]))
    return jax.device_get(init(rng))

  # -- training / scoring --------------------------------------------------------------------

  def forward(self, params, context_ids_BxC, context_mask_BxC, target_ids_BxT, target_mask_BxT,
              deterministic: bool = True, dropout_rng=None, plan=None) -> ModelOutput:
    """`plan`: a `packing.PackingPlan` of the contexts (encoder-decoder models encode them
    packed; ignored by decoder-only ones)."""
    states, hidden, loss_mask = self._prediction_states(
        params, context_ids_BxC, context_mask_BxC, target_ids_BxT, target_mask_BxT,
        deterministic, dropout_rng, plan)
    logits = self.logits(params, states)
    if self.is_encoder_decoder:  # row 0 predicts nothing: zeros, as documented
      logits = logits.at[:, 0].set(0.0)
    return ModelOutput(logits, hidden, loss_mask)

  def target_logprobs(self, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                      target_mask_BxT, deterministic: bool = True,
                      dropout_rng=None) -> TargetScores:
    """log p(target t | everything before it) without materialising log-softmax or its
    gradient over the vocabulary: the path for losses (SFT, perplexity) and PPO log-probs."""
    states, hidden, loss_mask = self._prediction_states(
        params, context_ids_BxC, context_mask_BxC, target_ids_BxT, target_mask_BxT,
        deterministic, dropout_rng)
    targets = jnp.asarray(target_ids_BxT)
    if self.is_encoder_decoder:  # only rows 1.. are predictions: skip row 0's logits
      states, targets = states[:, 1:], targets[:, 1:]
    logp = target_logprobs(self.logits(params, states), targets)
    if self.is_encoder_decoder:
      logp = jnp.pad(logp, ((0, 0), (1, 0)))
    return TargetScores(jnp.where(loss_mask > 0, logp, 0.0), hidden, loss_mask)

  def target_states(self, params, context_ids_BxC, context_mask_BxC, target_ids_NxT,
                    target_mask_NxT, deterministic: bool = True, dropout_rng=None):
    """Last hidden states at the target tokens (row t: the state that has read target t),
    without the LM head: what reward and value heads pool. N = B*g targets, g consecutive
    rows per context (several candidate responses to one context): encoder-decoder models
    encode each context once and the g decoder rows share its states (`layers.attention`);
    decoder-only models read each context again before each of its targets."""
    b, n = context_ids_BxC.shape[0], target_ids_NxT.shape[0]
    if n % b:
      raise ValueError(f"{n} targets cannot be split evenly over {b} contexts")
    rngs = None if deterministic else {"dropout": dropout_rng}
    if self.is_encoder_decoder:
      return self.module.apply({"params": params}, context_ids_BxC, context_mask_BxC,
                               target_ids_NxT, target_mask_NxT, deterministic,
                               method="decoder_hidden", rngs=rngs)
    repeat = lambda x: jnp.repeat(x, n // b, axis=0)
    _, hidden, _ = self._prediction_states(
        params, repeat(context_ids_BxC), repeat(context_mask_BxC), target_ids_NxT,
        target_mask_NxT, deterministic, dropout_rng)
    return hidden

  def prediction_states(self, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                        target_mask_BxT, deterministic: bool = True, dropout_rng=None,
                        plan=None):
    """(states_BxTxD whose row t is the state that predicts target t, loss_mask_BxT): where
    value heads sit (the LM head of these states gives `forward`'s logits). `plan`: as in
    `forward`."""
    states, _, loss_mask = self._prediction_states(
        params, context_ids_BxC, context_mask_BxC, target_ids_BxT, target_mask_BxT,
        deterministic, dropout_rng, plan)
    return states, loss_mask

  def logits(self, params, states_BxTxD):
    """Vocabulary logits of decoder states (the LM head, with each family's scaling)."""
    return self.module.apply({"params": params}, states_BxTxD, method="logits")

  def _prediction_states(self, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                         target_mask_BxT, deterministic, dropout_rng, plan=None):
    """(states_BxTxD whose row t predicts target t, hidden_BxTxD at target t, loss_mask_BxT)."""
    rngs = None if deterministic else {"dropout": dropout_rng}
    variables = {"params": params}
    if self.is_encoder_decoder:
      hidden = self.module.apply(variables, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                                 target_mask_BxT, deterministic, plan, method="decoder_hidden",
                                 rngs=rngs)
      # Decoder position t predicts target t+1: shift so row t predicts target t.
      states = jnp.pad(hidden[:, :-1], ((0, 0), (1, 0), (0, 0)))
      loss_mask = jnp.asarray(target_mask_BxT).at[:, 0].set(0)
      return states, hidden, loss_mask
    c = context_ids_BxC.shape[1]
    ids = jnp.concatenate([context_ids_BxC, target_ids_BxT], axis=1)
    mask = jnp.concatenate([context_mask_BxC, target_mask_BxT], axis=1)

    def run(module):
      hidden, _ = module.decode(ids, positions_from_mask(mask), mask,
                                deterministic=deterministic)
      return hidden

    hidden = nn.apply(run, self.module)(variables, rngs=rngs)
    # Position c-1+t predicts target t.
    return hidden[:, c - 1:-1], hidden[:, c:], jnp.asarray(target_mask_BxT)

  def input_embeddings(self, params):
    return self.module.apply({"params": params}, method="input_embeddings")

  # -- decoding (used by generation) -----------------------------------------------------------

  def num_cache_layers(self) -> int:
    return families.of(self.cfg).decoder_cache(self.cfg)[0]

  def cache_heads(self) -> tuple[int, int]:
    return families.of(self.cfg).decoder_cache(self.cfg)[1:]

  def init_cache(self, batch: int, length: int, encoder_length: int = 0, dtype=jnp.float32,
                 cross=None):
    """Zero caches for the decoder: per layer (a tuple) or stacked on a layer axis (scan).

    Each layer holds its self-attention keys/values and, for encoder-decoder models, the
    cross-attention keys/values: `cross` (from `cross_cache`) when given, else zeros of
    `encoder_length` (what `cross_cache` fills). `cross` may hold fewer rows than `batch`:
    `batch / rows` consecutive rows (beams) then share one example's keys/values, stored once
    (see `layers.attention`).
    """
    n = self.num_cache_layers()
    h, k = self.cache_heads()

    def layer(lead, cross_part):
      zeros = lambda rows, s: jnp.zeros((*lead, rows, h, s, k), dtype)
      self_cache = KVCache(zeros(batch, length), zeros(batch, length))
      if not self.is_encoder_decoder:
        return self_cache
      if cross_part is None:
        cross_part = KVCache(zeros(batch, encoder_length), zeros(batch, encoder_length))
      return {"self": self_cache, "cross": cross_part}

    if self.cfg.scan_layers:
      return layer((n,), cross)
    return tuple(layer((), None if cross is None else cross[i]) for i in range(n))

  def cross_cache(self, params, encoder_states_BxSxD):
    """Every decoder layer's cross-attention keys/values of the encoder states, as a first
    decoding step would cache them (a `KVCache` per layer, or one stacked under scan), for
    `init_cache(cross=...)`: decoding steps after it all run the same decoder program."""
    b, s = encoder_states_BxSxD.shape[:2]
    cache = self.module.apply({"params": params}, encoder_states_BxSxD,
                              self.init_cache(b, 1, s),
                              method="fill_cross_cache")
    if self.cfg.scan_layers:
      return cache["cross"]
    return tuple(layer["cross"] for layer in cache)

  def reorder_cache(self, cache, rows_R):
    """Gathers cache rows (beam search). Cross-attention caches are left alone: beams only move
    within their batch element, whose encoder keys/values are the same for every beam."""
    axis = 1 if self.cfg.scan_layers else 0
    take = lambda c: jax.tree.map(lambda x: jnp.take(x, rows_R, axis=axis), c)
    def one(layer):
      if self.is_encoder_decoder:
        return {"self": take(layer["self"]), "cross": layer["cross"]}
      return take(layer)
    return one(cache) if self.cfg.scan_layers else tuple(one(layer) for layer in cache)

  def _encode_call(self, params, dropout_rng=None):
    """The encoder as a function of (ids, mask, positions, segments); in train mode (dropout
    on) when given a `dropout_rng`."""
    rngs = None if dropout_rng is None else {"dropout": dropout_rng}
    return lambda ids, mask, pos, seg: self.module.apply(
        {"params": params}, ids, mask, dropout_rng is None, pos, seg, method="encode", rngs=rngs)

  def encode(self, params, ids_BxS, mask_BxS, plan: packing.PackingPlan | None = None):
    """Encoder states (zeros on padding when packed); with a `plan` (`packing.plan(mask)`)
    the contexts are encoded packed into its rows, for the same states at a fraction of the
    cost."""
    call = self._encode_call(params)
    if plan is None:
      return call(ids_BxS, mask_BxS, None, None)
    return plan.unpack(call(*plan.encoder_inputs(ids_BxS, mask_BxS)), mask_BxS)

  def prefill(self, params, ids_BxS, mask_BxS, plan: packing.PackingPlan | None = None,
              dropout_rng=None):
    """Encoder-decoder: encodes the contexts for decoding. Returns (cross, cross_mask): the
    cross-attention keys/values (`cross_cache`, for `init_cache`) and what decoding steps take
    as `encoder_mask_BxSe`.

    With a `plan` the encoder runs on its packed rows and the cross-attention keys/values are
    kept on them: the same results, at a fraction of the encoder's cost and of every step's
    cross-attention reads. `dropout_rng`: the encoder in train mode (dropout on)."""
    call = self._encode_call(params, dropout_rng)
    if plan is None:
      return self.cross_cache(params, call(ids_BxS, mask_BxS, None, None)), mask_BxS
    states = call(*plan.encoder_inputs(ids_BxS, mask_BxS))
    return self.cross_cache(params, states), plan.cross_keys(mask_BxS)

  def decode_step(self, params, ids_BxT, key_mask_BxS, cache, cache_index, *,
                  encoder_mask_BxSe=None, positions_BxT=None, vocab_major: bool = False,
                  dropout_rng=None):
    """Runs T tokens through the decoder at cache slot `cache_index`.

    Returns (logits for the last token only: Bx1xV, or VxB with `vocab_major`, the faster
    layout for a decoding step; hidden_BxTxD, new_cache): a prefill over a long prompt never
    materialises TxV logits. Encoder-decoder: the cross-attention keys/values are the cache's
    (`init_cache(cross=cross_cache(...))`); `encoder_mask_BxSe` may be the
    `packing.PackedKeys` of packed encoder states (see `prefill`). `dropout_rng`: the
    decoder in train mode (dropout on), as a model sampled during training.
    """
    deterministic = dropout_rng is None

    def run(module):
      if self.is_encoder_decoder:
        hidden, new_cache = module.decode(ids_BxT, key_mask_BxS, None, encoder_mask_BxSe,
                                          cache=cache, cache_index=cache_index,
                                          deterministic=deterministic)
      else:
        hidden, new_cache = module.decode(ids_BxT, positions_BxT, key_mask_BxS, cache=cache,
                                          cache_index=cache_index, deterministic=deterministic)
      return module.logits(hidden[:, -1:], vocab_major), hidden, new_cache

    rngs = None if deterministic else {"dropout": dropout_rng}
    return nn.apply(run, self.module)({"params": params}, rngs=rngs)


@functools.lru_cache(maxsize=8)
def _abstract_params(model: DialogueModel):
  """Traces the model's init once per config (loading and sharding both ask for it)."""
  return jax.eval_shape(lambda: model.module.init(jax.random.PRNGKey(0),
                                                  *model._dummy_inputs())["params"])  # pylint: disable=protected-access


def param_count(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))


def unbox(tree):
  return flax.linen.unbox(tree)
