"""How far a trained policy moved from the policy it started from, on held-out contexts: the
KL divergence KL(policy || start) per response, estimated from responses sampled from the
policy (one per context, temperature 1, no truncation): the mean over contexts of
sum_t log p_policy(y_t | ...) - log p_start(y_t | ...), an unbiased estimate (k1) of the
sequence-level KL. Both policies must share an architecture and a tokenizer (every policy the
main job trains starts from its SFT policy)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import sharding
from empathy_jax.data.pipeline import make_batcher, tokenize_split
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate
from empathy_jax.training.ppo import rollout as R


def _sampling(model_cfg, max_new_tokens: int):
  base = resolve({}, {}, model_cfg)
  return dataclasses.replace(base, max_new_tokens=max_new_tokens, sample=True, temperature=1.0,
                             top_k=0, top_p=1.0, beam_width=1, min_length=0,
                             no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0,
                             forced_eos_token_id=None)


def _row_kl(params, start_params, ctx, cmask, rows, rng, *, model, gen):
  """[B] sum over a sampled response's tokens of log p_params - log p_start."""
  out = generate(model, params, ctx, cmask, gen, rng, rows)
  mask = out.mask_BxN * (cmask.sum(1) > 0)[:, None]
  tgt, tgt_mask = R.teacher_forced(model, out.tokens_BxN, mask, gen.decoder_start_token_id)
  logp, _ = R.policy_outputs(model, params, ctx, cmask, tgt, tgt_mask)
  logp_start, _ = R.policy_outputs(model, start_params, ctx, cmask, tgt, tgt_mask)
  return jnp.sum((logp - logp_start) * mask, axis=1)


def sampled_kl(policy, start, split, max_new_tokens: int = 24, batch_size: int = 32,
               seed: int = 0, mesh=None) -> dict:
  """{"kl": mean nats per response, "kl_sem": its standard error, "rows": contexts} of
  `policy` (a `LoadedModel`) against `start` on `split`'s contexts."""
  if policy.model.cfg.replace(dropout_rate=0.0) != start.model.cfg.replace(dropout_rate=0.0):
    raise ValueError("the KL needs two policies of one architecture")
  mesh = mesh if mesh is not None else sharding.make_mesh()
  shards = sharding.batch_shards(mesh)
  batch_size = -(-batch_size // shards) * shards
  fn = jax.jit(functools.partial(_row_kl, model=policy.model,
                                 gen=_sampling(policy.model.cfg, max_new_tokens)))
  params_sh = sharding.param_shardings(policy.model, mesh)
  params = sharding.shard_tree(policy.params, params_sh)
  start_params = sharding.shard_tree(start.params, params_sh)
  data = sharding.batch_sharding(mesh, 2)
  table = tokenize_split(split, policy.fmt)
  values = []
  for batch in make_batcher(policy.fmt, batch_size).batches(table):
    rows = np.maximum(batch.example_index_B, 0)
    ctx, cmask = sharding.from_host([batch.context_ids_BxC, batch.context_mask_BxC], data)
    kl = sharding.to_host(fn(params, start_params, ctx, cmask,
                             sharding.replicate(rows, mesh), jax.random.PRNGKey(seed)))
    values.extend(kl[batch.example_index_B >= 0].tolist())
  values = np.asarray(values)
  return {"kl": float(values.mean()), "kl_sem": float(values.std(ddof=1) / np.sqrt(len(values)))
          if len(values) > 1 else float("nan"), "rows": int(len(values))}
