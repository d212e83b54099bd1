"""The one jitted program per batch of `launch/test.py`: generation and each example's target
log-likelihood (for perplexity), from a single encoder pass.

A run compiles one program per context length bucket, not one per (context, target) pair and
another for generation: targets are padded to one length for the whole run, and scored chunk by
chunk through the cached decoder in a `lax.while_loop` that stops after the batch's longest
target, so that padding costs what padding to the longest would.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from empathy_jax.generation.config import GenerationConfig
from empathy_jax.generation.search import GenerationOutput, generate
from empathy_jax.models.gpt2 import positions_from_mask
from empathy_jax.models.token_logprobs import target_logprobs

CHUNK = 16  # target tokens per decoder call when scoring


def target_nll(model, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
               target_mask_BxT, encoder_states=None, chunk: int = CHUNK):
  """(nll_B, count_B): minus the summed log-probabilities of each row's target tokens under
  teacher forcing, and how many tokens were scored: the tokens and log-probabilities of
  `DialogueModel.target_logprobs` (for encoder-decoder models the first target token is the
  decoder's start and is not scored). Targets must be right-padded.

  `encoder_states`: the contexts' encoder states if the caller has them (encoder-decoder)."""
  b, t = target_ids_BxT.shape
  width = -(-t // chunk) * chunk
  pad = ((0, 0), (0, width + 1 - t))  # one more column: the token after the last chunk
  ids = jnp.pad(jnp.asarray(target_ids_BxT, jnp.int32), pad)
  mask = jnp.pad(jnp.asarray(target_mask_BxT, jnp.int32), pad)
  scored = mask.at[:, 0].set(0) if model.is_encoder_decoder else mask
  # Chunk i feeds target tokens [i*chunk, (i+1)*chunk) and predicts the next ones; a row of
  # length L needs its tokens up to L-2 fed.
  longest = jnp.max(jnp.sum(mask, axis=1))
  chunks = jnp.maximum((longest - 1 + chunk - 1) // chunk, 1)
  logits_of = lambda hidden: model.module.apply({"params": params}, hidden, method="logits")

  if model.is_encoder_decoder:
    if encoder_states is None:
      encoder_states = model.encode(params, context_ids_BxC, context_mask_BxC)
    cache = model.init_cache(b, width, context_ids_BxC.shape[1])
    key_mask = mask[:, :width]
    total = jnp.zeros((b,), jnp.float32)
    offset, positions = 0, None
  else:
    c = context_ids_BxC.shape[1]
    cache = model.init_cache(b, c + width)
    key_mask = jnp.concatenate([jnp.asarray(context_mask_BxC, jnp.int32), mask[:, :width]], 1)
    # The context's last state predicts target token 0.
    first, _, cache = model.decode_step(params, context_ids_BxC, key_mask, cache, 0,
                                        positions_BxT=positions_from_mask(context_mask_BxC))
    lp = target_logprobs(first[:, -1].astype(jnp.float32), ids[:, 0])
    total = -lp * scored[:, 0]
    offset = c
    positions = jnp.sum(context_mask_BxC, axis=1).astype(jnp.int32)[:, None] + jnp.arange(chunk)

  def score(i, cache, total, states=None):
    start = i * chunk
    tokens = jax.lax.dynamic_slice_in_dim(ids, start, chunk, axis=1)
    _, hidden, cache = model.decode_step(
        params, tokens, key_mask, cache, offset + start, encoder_states=states,
        encoder_mask_BxSe=context_mask_BxC,
        positions_BxT=None if positions is None else positions + start)
    following = jax.lax.dynamic_slice_in_dim(ids, start + 1, chunk, axis=1)
    weights = jax.lax.dynamic_slice_in_dim(scored, start + 1, chunk, axis=1)
    lp = target_logprobs(logits_of(hidden).astype(jnp.float32), following)
    return cache, total - jnp.sum(lp * weights, axis=1)

  # The first chunk also fills the cross-attention cache from the encoder states.
  cache, total = score(0, cache, total, encoder_states)
  body = lambda state: (state[0] + 1, *score(*state))
  _, _, total = jax.lax.while_loop(lambda state: state[0] < chunks, body,
                                   (jnp.int32(1), cache, total))
  return total, jnp.sum(scored, axis=1).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("model", "cfg"))
def generate_and_score(model, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                       target_mask_BxT, cfg: GenerationConfig, rng, row_ids_B
                       ) -> tuple[GenerationOutput, jax.Array, jax.Array]:
  """(generation output, nll_B, count_B) of a batch; see `target_nll` and
  `search.generate_ids` (row r's randomness is `fold_in(rng, row_ids_B[r])`)."""
  states = None
  if model.is_encoder_decoder:
    states = model.encode(params, context_ids_BxC, context_mask_BxC)
  out = generate(model, params, context_ids_BxC, context_mask_BxC, cfg, rng, row_ids_B,
                 encoder_states=states)
  nll, count = target_nll(model, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                          target_mask_BxT, states)
  return out, nll, count
