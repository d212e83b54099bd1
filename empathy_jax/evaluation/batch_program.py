"""The jitted programs of `launch/test.py`: generation and each example's target
log-likelihood (for perplexity), from a single encoder pass.

Targets are padded to one length for the whole run and scored chunk by chunk through the
cached decoder in a `lax.while_loop` that stops after the batch's longest target, so that
padding costs what padding to the longest would. Decoder-only models run one program per
context length bucket (`generate_and_score`). Encoder-decoder models split the batch in two:
`encode_for_decoding`, one small program per bucket, returns the cross-attention keys/values
padded to a decoding width shared by several buckets, and `generate_and_score` decodes and
scores from them, one program per width: a run compiles its big program a few times instead
of once per bucket, and the padded keys are masked, so the results do not change.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from empathy_jax import sharding
from empathy_jax.generation.config import GenerationConfig
from empathy_jax.generation.search import GenerationOutput, generate
from empathy_jax.models.gpt2 import positions_from_mask
from empathy_jax.models.token_logprobs import target_logprobs

CHUNK = 16  # target tokens per decoder call when scoring
HEAD_ROWS = 256  # scored tokens per vocabulary projection


def target_nll(model, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
               target_mask_BxT, cross_cache=None, chunk: int = CHUNK,
               head_rows: int = HEAD_ROWS):
  """(nll_B, count_B): minus the summed log-probabilities of each row's target tokens under
  teacher forcing, and how many tokens were scored: the tokens and log-probabilities of
  `DialogueModel.target_logprobs` (for encoder-decoder models the first target token is the
  decoder's start and is not scored). Targets must be right-padded.

  The decoder runs chunk by chunk up to the batch's longest target; the vocabulary projection,
  the largest cost, then runs only on the scored tokens, gathered into blocks of `head_rows`.
  `cross_cache`: the contexts' cross-attention keys/values (`model.cross_cache`) if the caller
  has them (encoder-decoder; the contexts are then not encoded)."""
  b, t = target_ids_BxT.shape
  width = -(-t // chunk) * chunk
  pad = ((0, 0), (0, width + 1 - t))  # one more column: the token after the last chunk
  ids = jnp.pad(jnp.asarray(target_ids_BxT, jnp.int32), pad)
  mask = jnp.pad(jnp.asarray(target_mask_BxT, jnp.int32), pad)
  scored = mask.at[:, 0].set(0) if model.is_encoder_decoder else mask
  # Chunk i feeds target tokens [i*chunk, (i+1)*chunk); a row of length L needs its tokens up
  # to L-2 fed (the state at token j predicts token j+1).
  longest = jnp.max(jnp.sum(mask, axis=1))
  chunks = jnp.maximum((longest - 1 + chunk - 1) // chunk, 1)
  d = model.hidden_size

  if model.is_encoder_decoder:
    if cross_cache is None:
      cross_cache, _ = model.prefill(params, context_ids_BxC, context_mask_BxC)
    cache = model.init_cache(b, width, cross=cross_cache)
    key_mask = mask[:, :width]
    offset, positions = 0, None
    # Column 0 of the states: what predicts target token 0 (nothing here; never scored).
    states = jnp.zeros((b, width + 1, d), jnp.float32)
  else:
    c = context_ids_BxC.shape[1]
    cache = model.init_cache(b, c + width)
    key_mask = jnp.concatenate([jnp.asarray(context_mask_BxC, jnp.int32), mask[:, :width]], 1)
    _, hidden, cache = model.decode_step(params, context_ids_BxC, key_mask, cache, 0,
                                         positions_BxT=positions_from_mask(context_mask_BxC))
    # The context's last state predicts target token 0.
    states = jnp.zeros((b, width + 1, d), jnp.float32).at[:, 0].set(
        hidden[:, -1].astype(jnp.float32))
    offset = c
    positions = jnp.sum(context_mask_BxC, axis=1).astype(jnp.int32)[:, None] + jnp.arange(chunk)

  def decode(i, cache, states):
    start = i * chunk
    tokens = jax.lax.dynamic_slice_in_dim(ids, start, chunk, axis=1)
    _, hidden, cache = model.decode_step(
        params, tokens, key_mask, cache, offset + start, encoder_mask_BxSe=context_mask_BxC,
        positions_BxT=None if positions is None else positions + start)
    # The state at token j predicts token j+1: stored in column j+1.
    states = jax.lax.dynamic_update_slice_in_dim(states, hidden.astype(jnp.float32), start + 1,
                                                 axis=1)
    return cache, states

  body = lambda state: (state[0] + 1, *decode(*state))
  _, _, states = jax.lax.while_loop(lambda state: state[0] < chunks, body,
                                    (jnp.int32(0), cache, states))

  # Scored tokens first (stable: row-major order), in blocks; only blocks holding some run.
  flat_scored = scored.reshape(-1)
  order = jnp.argsort(1 - flat_scored, stable=True)
  n_scored = jnp.sum(flat_scored)
  total_rows = b * (width + 1)
  blocks = -(-total_rows // head_rows)
  order = jnp.pad(order, (0, blocks * head_rows - total_rows))
  flat_states = states.reshape(total_rows, d)
  flat_ids = ids.reshape(-1)

  def head(i, total):
    picked = jax.lax.dynamic_slice_in_dim(order, i * head_rows, head_rows)
    logits = model.logits(params, flat_states[picked][None])[0]
    lp = target_logprobs(logits.astype(jnp.float32), flat_ids[picked])
    real = (i * head_rows + jnp.arange(head_rows)) < n_scored
    return total.at[picked // (width + 1)].add(jnp.where(real, -lp, 0.0))

  needed = (n_scored + head_rows - 1) // head_rows
  _, total = jax.lax.while_loop(lambda s: s[0] < needed, lambda s: (s[0] + 1, head(*s)),
                                (jnp.int32(0), jnp.zeros((b,), jnp.float32)))
  return total, jnp.sum(scored, axis=1).astype(jnp.float32)


def cross_cache_shardings(cross_cache, mesh):
  """Shardings of a cross cache's keys/values ([..., rows, heads, S, head_dim]): rows split
  over the mesh's batch axes, as the batch they come from."""
  return jax.tree.map(lambda x: sharding.batch_sharding(mesh, x.ndim, x.ndim - 4), cross_cache)


@functools.partial(jax.jit, static_argnames=("model", "width", "pad_id", "mesh"))
def encode_for_decoding(model, params, context_ids_BxC, context_mask_BxC, width: int,
                        pad_id: int, mesh=None):
  """Encoder-decoder: (cross_cache, context_ids_BxW, context_mask_BxW): the contexts'
  cross-attention keys/values and the contexts themselves, padded with masked keys (and
  `pad_id`) to `width` >= C, the context length `generate_and_score` is compiled for. With a
  `mesh` the keys/values are laid out by `cross_cache_shardings` (what that program is
  compiled to take)."""
  pad = width - context_ids_BxC.shape[1]
  if pad < 0:
    raise ValueError(f"width {width} is shorter than the contexts ({context_ids_BxC.shape[1]})")
  cross, _ = model.prefill(params, context_ids_BxC, context_mask_BxC)
  cross = jax.tree.map(lambda x: jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(0, pad), (0, 0)]), cross)
  if mesh is not None:
    cross = jax.lax.with_sharding_constraint(cross, cross_cache_shardings(cross, mesh))
  ids = jnp.pad(jnp.asarray(context_ids_BxC, jnp.int32), ((0, 0), (0, pad)),
                constant_values=pad_id)
  mask = jnp.pad(jnp.asarray(context_mask_BxC, jnp.int32), ((0, 0), (0, pad)))
  return cross, ids, mask


@functools.partial(jax.jit, static_argnames=("model", "cfg"))
def generate_and_score(model, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                       target_mask_BxT, cfg: GenerationConfig, rng, row_ids_B, cross_cache=None
                       ) -> tuple[GenerationOutput, jax.Array, jax.Array]:
  """(generation output, nll_B, count_B) of a batch; see `target_nll` and
  `search.generate_ids` (row r's randomness is `fold_in(rng, row_ids_B[r])`). Encoder-decoder
  models encode the contexts once for both, or take `cross_cache` from `encode_for_decoding`."""
  if model.is_encoder_decoder and cross_cache is None:
    cross_cache, _ = model.prefill(params, context_ids_BxC, context_mask_BxC)
  out = generate(model, params, context_ids_BxC, context_mask_BxC, cfg, rng, row_ids_B,
                 cross_cache=cross_cache)
  nll, count = target_nll(model, params, context_ids_BxC, context_mask_BxC, target_ids_BxT,
                          target_mask_BxT, cross_cache)
  return out, nll, count
