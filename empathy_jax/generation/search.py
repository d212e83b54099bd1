"""Jitted decoding: greedy / sampling and beam search as `lax.while_loop`s with a KV cache.

The encoder (or the decoder-only prompt) runs once; each loop step feeds one token per row
through the cached decoder. Beams are folded into the batch (row b*K + k). Beam search ports
transformers' vectorised `_beam_search` (the same top-k continuations, finished-beam merging,
length normalisation and early-stopping heuristic), so ids match its `generate` exactly.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from empathy_jax.generation import processors as P
from empathy_jax.generation.config import GenerationConfig
from empathy_jax.models.gpt2 import positions_from_mask
from empathy_jax.models.packing import PackingPlan
from empathy_jax.models.token_logprobs import target_logprobs

BIG_NEG = -1.0e9


@dataclasses.dataclass(frozen=True)
class GenerationOutput:
  """tokens_BxN: generated ids (no prompt / start token), padded as HF pads after EOS.
  logprobs_BxN: log-probability of each token under the model's distribution at the sampling
    temperature (what PPO's policy ratio needs); 0 on padding.
  mask_BxN: 1 on generated tokens up to and including EOS."""

  tokens_BxN: jax.Array
  logprobs_BxN: jax.Array
  mask_BxN: jax.Array


jax.tree_util.register_dataclass(GenerationOutput, data_fields=[
    "tokens_BxN", "logprobs_BxN", "mask_BxN"], meta_fields=[])


def _repeat(x, k: int):
  return x if k == 1 else jnp.repeat(x, k, axis=0)


@dataclasses.dataclass
class _Session:
  """Model-kind-specific glue: the prefilled cache and a one-token step function. The first
  step feeds the last prompt token (decoder-only) or the start token (encoder-decoder), so
  every token comes from the search loop's one decoder program."""

  seq: jax.Array         # RxL buffer: prompt/start token, then generated tokens
  prompt_len: int
  cache: object
  step: object           # (tokens_R, slot, cache) -> (logits, cache): RxV, or VxR (`vocab_major`)
  encoder_ids: jax.Array | None


def _start(model, params, ids_BxC, mask_BxC, cfg: GenerationConfig, k: int, fill: int,
           packing: PackingPlan | None, vocab_major: bool = False, cross_cache=None,
           dropout_rng=None):
  """`dropout_rng`: every pass in train mode (dropout on), each with its own key: the encoder,
  the prompt and each decoding step (keyed by its cache slot)."""
  n = cfg.max_new_tokens
  drop = (lambda i: None) if dropout_rng is None else (
      lambda i: jax.random.fold_in(dropout_rng, i + 1))  # -1: the encoder or prompt
  last = (lambda logits: logits) if vocab_major else (lambda logits: logits[:, -1])
  ids, mask = _repeat(ids_BxC, k), _repeat(mask_BxC, k)
  rows = ids.shape[0]
  if model.is_encoder_decoder:
    # The K beams of an example share its encoder output: encoded, and its cross-attention
    # keys/values cached, once per example rather than once per beam (and, packed, once per
    # packed row of examples).
    length = 1 + n
    seq = jnp.full((rows, length), fill, jnp.int32).at[:, 0].set(cfg.decoder_start_token_id)
    key_mask = jnp.ones((rows, length), jnp.int32)
    if cross_cache is None:
      cross_cache, cross = model.prefill(params, ids_BxC, mask_BxC, packing, drop(-1))
    else:
      cross = mask_BxC
    cache = model.init_cache(rows, length, cross=cross_cache)

    def step(tokens, slot, cache):
      out, _, cache = model.decode_step(params, tokens[:, None], key_mask, cache, slot,
                                        encoder_mask_BxSe=cross, vocab_major=vocab_major,
                                        dropout_rng=drop(slot))
      return last(out), cache

    return _Session(seq, 1, cache, step, ids)
  c = ids.shape[1]
  length = c + n
  seq = jnp.full((rows, length), fill, jnp.int32).at[:, :c].set(ids)
  key_mask = jnp.concatenate([mask, jnp.ones((rows, n), mask.dtype)], axis=1)
  cache = model.init_cache(rows, length)
  prompt_pos = positions_from_mask(mask)
  if c > 1:  # the prompt but its last token, which the first step feeds
    _, _, cache = model.decode_step(params, ids[:, :-1], key_mask, cache, 0,
                                    positions_BxT=prompt_pos[:, :-1], dropout_rng=drop(-1))
  next_pos = jnp.sum(mask, axis=-1).astype(jnp.int32)

  def step(tokens, slot, cache):
    pos = jnp.where(slot < c, prompt_pos[:, -1], next_pos + slot - c)[:, None]
    out, _, cache = model.decode_step(params, tokens[:, None], key_mask, cache, slot,
                                      positions_BxT=pos, vocab_major=vocab_major,
                                      dropout_rng=drop(slot))
    return last(out), cache

  return _Session(seq, c, cache, step, None)


def _argmax(scores, axis: int = -1, top=None):
  """First index of the maximum along `axis`, as `jnp.argmax`/`torch.argmax`, via two plain
  reductions: XLA:CPU's fused (value, index) argmax reduction is not vectorised and cost 2 ms
  per step. `top`: the maximum (keepdims), when the caller has it already."""
  if top is None:
    top = jnp.max(scores, axis=axis, keepdims=True)
  ids = jax.lax.broadcasted_iota(jnp.int32, scores.shape, axis % scores.ndim)
  first = jnp.min(jnp.where(scores == top, ids, scores.shape[axis]), axis=axis)
  return jnp.minimum(first, scores.shape[axis] - 1)  # all-NaN rows: stay in range


def _first_max_vocab_major(x_VxR, top_1xR, chunk: int = 128):
  """`_argmax(x, 0)` in two levels: the first block of `chunk` vocabulary rows whose maximum is
  the top, then the first top inside it. XLA:CPU reduces the major axis of a VxR array slowly
  when a select is fused in; here the select touches one block per column."""
  v, _ = x_VxR.shape
  blocks = -(-v // chunk)
  block_max = jax.lax.reduce_window(x_VxR, -jnp.inf, jax.lax.max, (chunk, 1), (chunk, 1),
                                    ((0, blocks * chunk - v), (0, 0)))  # blocks x R
  block = _argmax(block_max, 0, top_1xR)
  rows = block[None, :] * chunk + jnp.arange(chunk)[:, None]  # chunk x R
  inside = jnp.take_along_axis(x_VxR, jnp.minimum(rows, v - 1), axis=0)
  inside = jnp.where(rows < v, inside, -jnp.inf)
  return jnp.minimum(block * chunk + _argmax(inside, 0, top_1xR), v - 1)


def _greedy_vocab_major(logits_VxR):
  """Greedy tokens and their log-probabilities from vocab-major logits (as `_argmax` and
  `target_logprobs` on the transpose): log p(argmax) = -log(sum(exp(x - max)))."""
  x = logits_VxR.astype(jnp.float32)
  top = jnp.max(x, axis=0, keepdims=True)
  return _first_max_vocab_major(x, top), -jnp.log(jnp.sum(jnp.exp(x - top), axis=0))


def greedy_or_sample(model, params, ids_BxC, mask_BxC, cfg: GenerationConfig, keys_B,
                     packing: PackingPlan | None = None, cross_cache=None, dropout_rng=None):
  """HF `_sample`: argmax (or a draw from the warped distribution) until EOS or max length;
  `dropout_rng`: the model in train mode, as HF's `generate` on a module left in training."""
  eos = cfg.eos_token_id
  # Plain greedy (nothing to sample, no constraint to apply) reads the logits vocab-major.
  plain = not cfg.sample and not P.constrains(cfg, model.is_encoder_decoder)
  s = _start(model, params, ids_BxC, mask_BxC, cfg, 1, cfg.pad_token_id, packing, plain,
             cross_cache=cross_cache, dropout_rng=dropout_rng)
  b, n = ids_BxC.shape[0], cfg.max_new_tokens
  max_length = s.prompt_len + n

  def choose(cur, seq, logits, unfinished, logprobs):
    """Picks the tokens at position `cur` from their logits."""
    if plain:
      tokens, lp = _greedy_vocab_major(logits)
    else:
      scores = P.constrain(logits.astype(jnp.float32), seq, cur, max_length, cfg,
                           s.encoder_ids)
      if cfg.sample:
        scores = P.warp(scores, cfg)
        step_keys = jax.vmap(lambda key: jax.random.fold_in(key, cur))(keys_B)
        tokens = jax.vmap(jax.random.categorical)(step_keys, scores).astype(jnp.int32)
      else:
        tokens = _argmax(scores)
      temperature = cfg.temperature if cfg.sample else 1.0
      lp = target_logprobs(logits.astype(jnp.float32) / temperature, tokens)
    if eos is not None:
      tokens = jnp.where(unfinished, tokens, cfg.pad_token_id)
    logprobs = logprobs.at[:, cur - s.prompt_len].set(jnp.where(unfinished, lp, 0.0))
    seq = seq.at[:, cur].set(tokens)
    if eos is not None:
      unfinished = unfinished & (tokens != eos)
    return seq, unfinished, logprobs

  # Each iteration runs the decoder on the previous token, then chooses: logits never cross
  # iterations (no copy of the loop-carried RxV array) and no step runs after the last token.
  def body(state):
    cur, seq, cache, unfinished, logprobs = state
    logits, cache = s.step(seq[:, cur - 1], cur - 1, cache)
    seq, unfinished, logprobs = choose(cur, seq, logits, unfinished, logprobs)
    return cur + 1, seq, cache, unfinished, logprobs

  def cond(state):
    cur, unfinished = state[0], state[3]
    return (cur < max_length) & jnp.any(unfinished)

  init = (jnp.int32(s.prompt_len), s.seq, s.cache, jnp.ones((b,), bool),
          jnp.zeros((b, n), jnp.float32))
  _, seq, _, _, logprobs = jax.lax.while_loop(cond, body, init)
  tokens = seq[:, s.prompt_len:]
  return GenerationOutput(tokens, logprobs, _mask_through_eos(tokens, eos, logprobs))


def _mask_through_eos(tokens_BxN, eos, logprobs_BxN=None):
  """1 up to and including the first EOS; everything after is padding."""
  if eos is None:
    return jnp.ones_like(tokens_BxN)
  is_eos = (tokens_BxN == eos).astype(jnp.int32)
  before = jnp.cumsum(is_eos, axis=1) - is_eos  # EOS seen strictly before this position
  return (before == 0).astype(jnp.int32)


def _gather(x_BxKx, idx_BxJ):
  """x[b, idx[b, j]] for every j (beam gather)."""
  return jax.vmap(lambda x, i: x[i])(x_BxKx, idx_BxJ)


def beam_search(model, params, ids_BxC, mask_BxC, cfg: GenerationConfig, keys_B,
                packing: PackingPlan | None = None, cross_cache=None, dropout_rng=None):
  """Port of transformers' `_beam_search` (and beam sampling with Gumbel top-k);
  `dropout_rng` as in `greedy_or_sample`."""
  eos = cfg.eos_token_id
  k = cfg.beam_width
  b, n = ids_BxC.shape[0], cfg.max_new_tokens
  fill = cfg.pad_token_id or (eos if eos is not None else -1)  # HF: `pad or eos`
  s = _start(model, params, ids_BxC, mask_BxC, cfg, k, fill, packing, cross_cache=cross_cache,
             dropout_rng=dropout_rng)
  prompt = s.prompt_len
  max_length = prompt + n
  length = s.seq.shape[1]
  n_keep = max(2, 1 + (1 if eos is not None else 0)) * k
  top_num_beam_mask = jnp.arange(n_keep) < k
  lp_pen = cfg.length_alpha
  early = cfg.early_stopping

  def select(st, logits):
    """One step of beam bookkeeping at position `cur`, from the running beams' logits; also
    returns the cache rows the chosen continuations come from."""
    cur, run_seq, run_scores, run_lp, seq, scores, lps, finished, unsat, hits = st
    raw = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # (BK)xV
    proc = P.constrain(raw, run_seq.reshape(b * k, length), cur, max_length, cfg,
                       s.encoder_ids)
    if cfg.sample:
      proc = P.warp(proc, cfg)
    v = proc.shape[-1]
    acc = (proc.reshape(b, k, v) + run_scores[:, :, None]).reshape(b, k * v)
    if cfg.sample:  # sampling without replacement = Gumbel top-k
      step_keys = jax.vmap(lambda key: jax.random.fold_in(key, cur))(keys_B)
      gumbel = jax.vmap(lambda key: jax.random.gumbel(key, (k * v,)))(step_keys)
      _, idx = P.fast_top_k(acc + gumbel, n_keep)
      top_scores = jnp.take_along_axis(acc, idx, axis=1)
    else:
      top_scores, idx = P.fast_top_k(acc, n_keep)
    beam, tok = idx // v, (idx % v).astype(jnp.int32)
    top_seq = _gather(run_seq, beam).at[:, :, cur].set(tok)
    tok_lp = _gather(raw.reshape(b, k, v), beam)
    tok_lp = jnp.take_along_axis(tok_lp, tok[..., None], axis=-1)[..., 0]
    top_lp = _gather(run_lp, beam).at[:, :, cur - prompt].set(tok_lp)
    hits = (cur + 1 >= max_length) | ((tok == eos) if eos is not None else False)
    hits = jnp.broadcast_to(hits, tok.shape)

    # Beams that go on: the best K continuations that did not stop.
    running = top_scores + hits.astype(jnp.float32) * BIG_NEG
    _, nxt = jax.lax.top_k(running, k)
    run_seq, run_scores, run_lp = _gather(top_seq, nxt), _gather(running, nxt), _gather(top_lp,
                                                                                         nxt)
    src = _gather(beam, nxt)

    # Finished hypotheses: merge the continuations that just stopped, keep the K best.
    did = hits & top_num_beam_mask[None]
    norm = top_scores / ((cur + 1 - prompt).astype(jnp.float32) ** lp_pen)
    full = jnp.all(finished, axis=-1, keepdims=True) & (early is True)
    norm = norm + full * BIG_NEG + (~unsat) * BIG_NEG + (~did) * BIG_NEG
    merged = jnp.concatenate([scores, norm], axis=1)
    _, keep = jax.lax.top_k(merged, k)
    seq = _gather(jnp.concatenate([seq, top_seq], axis=1), keep)
    lps = _gather(jnp.concatenate([lps, top_lp], axis=1), keep)
    finished = _gather(jnp.concatenate([finished, did], axis=1), keep)
    scores = _gather(merged, keep)

    flat_src = (jnp.arange(b)[:, None] * k + src).reshape(-1)
    cur = cur + 1

    # HF's early-stopping heuristic on the new length.
    if early == "never" and lp_pen > 0.0:
      best_len = jnp.float32(max_length - prompt)
    else:
      best_len = (cur - prompt).astype(jnp.float32)
    best_running = run_scores[:, :1] / (best_len ** lp_pen)
    worst_finished = jnp.where(finished, jnp.min(scores, axis=1, keepdims=True), BIG_NEG)
    unsat = unsat & jnp.any(best_running > worst_finished, axis=-1, keepdims=True)
    return (cur, run_seq, run_scores, run_lp, seq, scores, lps, finished, unsat, hits), flat_src

  # As in greedy search: each iteration first runs the decoder on the tokens chosen last (from
  # the cache rows of the beams they continue), so logits never cross iterations.
  def body(carry):
    st, src, cache = carry
    cur, run_seq = st[0], st[1]
    cache = model.reorder_cache(cache, src)
    logits, cache = s.step(run_seq[:, :, cur - 1].reshape(-1), cur - 1, cache)
    return (*select(st, logits), cache)

  def cond(carry):
    st = carry[0]
    cur, finished, unsat, hits = st[0], st[7], st[8], st[9]
    improvement = jnp.any(unsat)
    open_beam = ~(jnp.all(finished) & (early is True))
    valid = ~jnp.all(hits)
    return (cur < max_length) & improvement & open_beam & valid

  run_seq = s.seq.reshape(b, k, length)
  run_scores = jnp.zeros((b, k), jnp.float32).at[:, 1:].set(BIG_NEG)
  init = (jnp.int32(prompt), run_seq, run_scores, jnp.zeros((b, k, n), jnp.float32), run_seq,
          jnp.full((b, k), BIG_NEG, jnp.float32), jnp.zeros((b, k, n), jnp.float32),
          jnp.zeros((b, k), bool), jnp.ones((b, 1), bool), jnp.zeros((b, n_keep), bool))
  # The first iteration decodes the prompt's last token (or the start token) for every beam
  # row: beam 0 alone is live (the others score BIG_NEG), as in transformers.
  final = jax.lax.while_loop(cond, body, (init, jnp.arange(b * k), s.cache))[0]
  seq, lps = final[4][:, 0], final[6][:, 0]
  tokens = seq[:, prompt:]
  mask = _mask_through_eos(tokens, eos)
  return GenerationOutput(tokens, jnp.where(mask == 1, lps, 0.0), mask)


def generate(model, params, context_ids_BxC, context_mask_BxC, cfg: GenerationConfig, rng,
             row_ids_B, packing: PackingPlan | None = None, cross_cache=None,
             dropout_rng=None):
  """`generate_ids` without its jit, for programs that generate as one of their parts;
  `cross_cache`: the contexts' cross-attention keys/values (`model.cross_cache`, unpacked)
  when the caller computed them already (the contexts are then not encoded). `dropout_rng`:
  greedy or sampled decoding with the model in train mode (dropout on; one key for the batch,
  so rows are no longer independent of their batch-mates)."""
  keys = jax.vmap(lambda r: jax.random.fold_in(rng, r))(row_ids_B)
  search = beam_search if cfg.beam_width > 1 else greedy_or_sample
  return search(model, params, context_ids_BxC, context_mask_BxC, cfg, keys, packing,
                cross_cache, dropout_rng)


@functools.partial(jax.jit, static_argnames=("model", "cfg"))
def generate_ids(model, params, context_ids_BxC, context_mask_BxC, cfg: GenerationConfig,
                 rng, row_ids_B, packing: PackingPlan | None = None):
  """Generates for a batch; row r's randomness is `fold_in(rng, row_ids_B[r])`, so a row's
  samples do not depend on its batch-mates. `packing`: the plan `packing.encoder_plan(model,
  mask)` makes on the host from this batch's mask (encoder-decoder models; the same outputs,
  faster: the encoder and the cross-attention run on packed rows)."""
  return generate(model, params, context_ids_BxC, context_mask_BxC, cfg, rng, row_ids_B,
                  packing)
