"""One PPO iteration as jittable functions: `sample` (responses from the current policy, their
old/reference log-probs and values), `finish` (scores -> per-token rewards, GAE), both in one
program as `make_rollout` when the reward model scores token ids in the graph; and `update`
(`ppo_epochs` x `num_minibatches` clipped updates inside one `lax.scan`).

The algorithm, not the original's copy of it (../shared/ORIGINAL_FORMATS.md lists its
defects): rollouts sample from the current policy with dropout off, at `temperature`, with
optional top-k/top-p truncation, and the log-probs that enter the ratio are those of exactly
that truncated distribution (the reference's are untruncated, so KL stays finite); old log-probs come from the rollout policy (`ratio_against="reference"` reproduces the
original's ratio against the frozen reference, for comparisons); per-token reward
-kl_coef * KL(policy || reference) plus the score (minus missing-EOS penalty) on the last real
token; GAE over the response tokens; returns from the raw advantages, advantages whitened;
clipped policy and value losses and an entropy bonus. The KL coefficient is an argument, so an
adaptive controller changes it without a recompile.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax
import jax
import jax.numpy as jnp

from empathy_jax.generation.config import GenerationConfig
from empathy_jax.generation.search import generate
from empathy_jax.training.ppo import rollout as R
from empathy_jax.training.ppo.advantages import (gae, kl_penalty, masked_mean, token_rewards,
                                                  whiten)
from empathy_jax.training.ppo.losses import policy_loss, value_loss


RECIPES = ("default", "original")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
  """Static PPO settings (hashable: part of the jit cache key). `generation` samples one
  sequence per context; top-k / top-p truncation enters the log-probs (see the module
  docstring)."""

  generation: GenerationConfig
  clip_epsilon: float = 0.2
  vf_coeff: float = 1.0
  entropy_coeff: float = 0.01
  gamma: float = 0.99
  lam: float = 0.95
  kl_estimator: str = "k1"
  value_clip: float = 0.2
  ppo_epochs: int = 4  # TRL's num_ppo_epochs
  num_minibatches: int = 1
  whiten_rewards: bool = False
  missing_eos_penalty: float = 0.0
  ratio_against: str = "rollout"
  shared_critic: bool = False  # the value head on the policy's own states
  # "original": the original's update (`original_minibatch_loss`); "default": `minibatch_loss`.
  recipe: str = "default"
  value_head_dropout: float = 0.0  # the original: nn.Dropout() (p 0.5) before its value head
  policy_dropout: bool = False  # sampling and the update's forward in train mode (the original's)
  kl_target: float = 0.0  # the adaptive KL controller's target (0: the coefficient is fixed)
  kl_horizon: int = 10000  # its horizon, in episodes

  def __post_init__(self):
    g = self.generation
    if g.beam_width != 1 or not g.sample:
      raise ValueError("PPO rollouts sample one response per context from the policy "
                       "(--beam_width 1 --sample): greedy or beam-searched responses are not "
                       "samples of a distribution whose log-probs could enter the ratio")
    if g.temperature <= 0 or g.top_k < 0 or not 0.0 < g.top_p <= 1.0:
      raise ValueError(f"PPO sampling needs --temperature > 0, --top_k >= 0 and --top_p in "
                       f"(0, 1]; got {g.temperature}, {g.top_k}, {g.top_p}")
    if (g.no_repeat_ngram_size or g.encoder_no_repeat_ngram_size or g.min_length
        or g.forced_eos_token_id is not None):
      raise ValueError("PPO rollouts need the logits processors off (no_repeat_ngram_size, "
                       "encoder_no_repeat_ngram_size, min_length, forced_eos_token_id): they "
                       "change the sampled distribution without entering the log-probs")
    if self.ratio_against not in ("rollout", "reference"):
      raise ValueError(f"ratio_against must be 'rollout' or 'reference', got "
                       f"{self.ratio_against!r}")
    if self.ppo_epochs < 1 or self.num_minibatches < 1:
      raise ValueError("ppo_epochs and num_minibatches must be >= 1")
    if self.recipe not in RECIPES:
      raise ValueError(f"recipe must be one of {RECIPES}, got {self.recipe!r}")
    if self.recipe == "original" and (self.ppo_epochs, self.num_minibatches, self.ratio_against,
                                      self.shared_critic) != (1, 1, "reference", True):
      raise ValueError("the original's update is one step per rollout batch with the ratio "
                       "against the reference and the value head on the policy")


def critic_params(params, cfg: PPOConfig) -> dict:
  """The critic as `rollout.values` takes it: its own backbone, or the policy's (shared)."""
  if cfg.shared_critic:
    return {"backbone": params["policy"], "head": params["critic"]["head"]}
  return params["critic"]


# The key of the rollout's dropout: folded into the rollout's key beyond any row id (rows' keys).
DROPOUT_STREAM = 2**31 - 1


@flax.struct.dataclass
class Rollout:
  """A rollout batch; response arrays are [B, N] over the generated tokens."""

  context_ids: jax.Array
  context_mask: jax.Array
  target_ids: jax.Array      # the teacher-forced replay (`rollout.teacher_forced`)
  target_mask: jax.Array
  response_ids: jax.Array
  response_mask: jax.Array
  old_logprobs: jax.Array
  ref_logprobs: jax.Array
  values: jax.Array
  scores: jax.Array          # [B], after the missing-EOS penalty
  rewards: jax.Array
  advantages: jax.Array      # whitened
  returns: jax.Array


ScoreFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def sample(model, params, ref_params, context_ids, context_mask, rng, row_ids, *,
           cfg: PPOConfig, plan=None) -> Rollout:
  """The rollout's policy side: responses sampled from `params["policy"]`, their teacher-forced
  replay, old and reference log-probs and the critic's values (scores, rewards and advantages
  still zero: `finish` fills them once the responses are scored). `plan`: a packing of the
  contexts for the teacher-forced passes (encoder-decoder models; the same values)."""
  g = cfg.generation
  # The original samples with the policy in train mode (Lightning's training_step): dropout on.
  dropout_rng = jax.random.fold_in(rng, DROPOUT_STREAM) if cfg.policy_dropout else None
  gen = generate(model, params["policy"], context_ids, context_mask, g, rng, row_ids,
                 dropout_rng=dropout_rng)
  # A row without a context is a batch's filler: its response takes no part.
  real = (jnp.asarray(context_mask).sum(1) > 0)[:, None]
  response_mask = gen.mask_BxN * real
  tgt, tgt_mask = R.teacher_forced(model, gen.tokens_BxN, response_mask,
                                   g.decoder_start_token_id)
  return from_responses(model, params, ref_params, context_ids, context_mask, tgt, tgt_mask,
                        response_mask, gen.tokens_BxN, cfg=cfg, plan=plan,
                        old_logprobs=(gen.logprobs_BxN if sampled_logprobs_are_old(cfg, model)
                                      else None))


def _old_distribution(cfg: PPOConfig) -> tuple[float, int, float]:
  """(temperature, top_k, top_p) of the distribution the old log-probs are taken under. The
  original's recipe takes the whole distribution at temperature 1."""
  g = cfg.generation
  return (1.0, 0, 1.0) if cfg.recipe == "original" else (g.temperature, g.top_k, g.top_p)


def sampled_logprobs_are_old(cfg: PPOConfig, model) -> bool:
  """Whether the sampling pass's own log-probs (`GenerationOutput.logprobs_BxN`: the
  untruncated distribution at the sampling temperature) are the old log-probs, so that the
  teacher-forced replay of the policy can be skipped: the policy sampled without dropout, the
  old distribution is that one (no top-k / top-p, the same temperature), and the two agree
  numerically (`rollout.sampling_logprobs_exact`)."""
  temperature, top_k, top_p = _old_distribution(cfg)
  return (not cfg.policy_dropout and top_k == 0 and top_p == 1.0
          and temperature == cfg.generation.temperature and R.sampling_logprobs_exact(model))


def from_responses(model, params, ref_params, context_ids, context_mask, tgt, tgt_mask,
                   response_mask, response_ids, *, cfg: PPOConfig, plan=None,
                   old_logprobs=None) -> Rollout:
  """`sample`'s rollout from given responses (their teacher-forced replay `tgt`, `tgt_mask`):
  old and reference log-probs and the critic's values. `old_logprobs`: the sampling pass's,
  where `sampled_logprobs_are_old` (else the policy's replay computes them)."""
  mask = response_mask.astype(jnp.float32)
  temperature, top_k, top_p = _old_distribution(cfg)
  if old_logprobs is None:
    old_logp, _ = R.policy_outputs(model, params["policy"], context_ids, context_mask, tgt,
                                   tgt_mask, temperature, plan, top_k, top_p)
  else:
    old_logp = old_logprobs
  # The reference untruncated: a sampled token is always inside its support, so the KL
  # estimate stays finite (KL of the truncated policy to the whole reference).
  ref_logp, _ = R.policy_outputs(model, ref_params, context_ids, context_mask, tgt, tgt_mask,
                                 temperature, plan)
  values = R.values(model, critic_params(params, cfg), context_ids, context_mask, tgt,
                    tgt_mask, plan) * mask
  zeros = jnp.zeros_like(mask)
  return Rollout(context_ids, context_mask, tgt, tgt_mask, response_ids, response_mask,
                 old_logp * mask, ref_logp * mask, values, jnp.zeros(mask.shape[0]), zeros,
                 zeros, zeros)


def finish(r: Rollout, scores_B, kl_coef, *, cfg: PPOConfig) -> Rollout:
  """Scores (the reward model's, mean_offset subtracted) -> missing-EOS penalty, per-token
  rewards, GAE, whitened advantages."""
  g = cfg.generation
  mask = r.response_mask.astype(jnp.float32)
  scores = jnp.asarray(scores_B, jnp.float32)
  if cfg.missing_eos_penalty and g.eos_token_id is not None:
    has_eos = jnp.any((r.response_ids == g.eos_token_id) & (mask > 0), axis=1)
    scores = scores - jnp.where(has_eos, 0.0, cfg.missing_eos_penalty)
  kl = kl_penalty(r.old_logprobs, r.ref_logprobs, cfg.kl_estimator) * mask
  rewards = token_rewards(kl, scores, mask, kl_coef)
  if cfg.whiten_rewards:
    rewards = whiten(rewards, mask, shift_mean=False)
  advantages, returns = gae(rewards, r.values, mask, cfg.gamma, cfg.lam)
  return r.replace(scores=scores, rewards=rewards, advantages=whiten(advantages, mask),
                   returns=returns)


def make_rollout(model, params, ref_params, context_ids, context_mask, rng, row_ids, kl_coef,
                 *, cfg: PPOConfig, score_fn: ScoreFn) -> Rollout:
  """`sample`, score in the graph (`score_fn(context_ids, context_mask, response_ids,
  response_mask) -> [B]`: the reward model when it shares the policy's tokenizer), `finish`:
  one program. A reward model with another tokenizer scores decoded text between `sample` and
  `finish` instead (the original's path)."""
  r = sample(model, params, ref_params, context_ids, context_mask, rng, row_ids, cfg=cfg)
  scores = score_fn(context_ids, context_mask, r.response_ids, r.response_mask)
  return finish(r, scores, kl_coef, cfg=cfg)


def minibatch_loss(params, mb: Rollout, model, cfg: PPOConfig, plan=None):
  """(the clipped PPO loss of a minibatch under `params`, its stats); `plan`: a packing of
  the minibatch's contexts, as in `sample`."""
  mask = mb.response_mask.astype(jnp.float32)
  logp, entropy = R.policy_outputs(model, params["policy"], mb.context_ids, mb.context_mask,
                                   mb.target_ids, mb.target_mask, cfg.generation.temperature,
                                   plan, cfg.generation.top_k, cfg.generation.top_p)
  anchor = mb.old_logprobs if cfg.ratio_against == "rollout" else mb.ref_logprobs
  pg, stats = policy_loss(logp, anchor, mb.advantages, mask, cfg.clip_epsilon)
  v = R.values(model, critic_params(params, cfg), mb.context_ids, mb.context_mask, mb.target_ids,
               mb.target_mask, plan)
  vl, vclip = value_loss(v, mb.values, mb.returns, mask, cfg.value_clip)
  ent = masked_mean(entropy, mask)
  loss = pg + cfg.vf_coeff * vl - cfg.entropy_coeff * ent
  return loss, _update_stats(pg, vl, loss, ent, stats, vclip, logp, anchor, mask)


def _update_stats(pg, vl, loss, ent, stats, vclip, logp, anchor, mask) -> dict:
  """A minibatch step's logged figures (TRL's names)."""
  dev = jnp.max(jnp.where(mask > 0, jnp.abs(jnp.exp(logp - anchor) - 1.0), 0.0))
  return {"loss/policy": pg, "loss/value": vl, "loss/total": loss, "entropy": ent,
          "policy/clipfrac": stats["clip_fraction"], "policy/approxkl": stats["approx_kl"],
          "val/clipfrac": vclip, "val/ratio": stats["ratio_mean"],
          "val/ratio_max_deviation": dev}


def original_minibatch_loss(params, mb: Rollout, model, cfg: PPOConfig, kl_coef, rng):
  """The original's update (`RLHFSupervisor._forward_and_log_metrics`), on one rollout batch:
  one forward of the policy (train mode when `policy_dropout`) gives the log-probs of the
  whole distribution, the entropy, and the values of a head on the same decoder states after
  dropout (`value_head_dropout`); the per-token rewards (the score on the last token, minus
  kl_coef times log p - log p_ref), GAE, whitened advantages and returns = whitened advantages
  + values are computed from them inside the step (no gradient through them); the ratio is
  against the frozen reference; the value loss is the plain mean squared error."""
  mask = mb.response_mask.astype(jnp.float32)
  policy_rng, head_rng = jax.random.split(rng)
  deterministic = not cfg.policy_dropout
  states, _ = model.prediction_states(params["policy"], mb.context_ids, mb.context_mask,
                                      mb.target_ids, mb.target_mask, deterministic,
                                      None if deterministic else policy_rng)
  logits = R.response_view(model, model.logits(params["policy"], states)).astype(jnp.float32)
  logp, entropy = R.token_logprobs(logits, R.response_view(model, mb.target_ids))
  hidden = R.response_view(model, states).astype(jnp.float32)
  if cfg.value_head_dropout:
    keep = jax.random.bernoulli(head_rng, 1.0 - cfg.value_head_dropout, hidden.shape)
    hidden = jnp.where(keep, hidden / (1.0 - cfg.value_head_dropout), 0.0)
  values = R.head_values(hidden, params["critic"]["head"])
  fixed = jax.lax.stop_gradient
  kl = (fixed(logp) - mb.ref_logprobs) * mask
  rewards = token_rewards(kl, mb.scores, mask, kl_coef)
  advantages, _ = gae(rewards, fixed(values) * mask, mask, cfg.gamma, cfg.lam)
  advantages = whiten(advantages, mask)
  returns = advantages + fixed(values)
  pg, stats = policy_loss(logp, mb.ref_logprobs, advantages, mask, cfg.clip_epsilon)
  vl = masked_mean(jnp.square(values - returns), mask)
  ent = masked_mean(entropy, mask)
  loss = pg + cfg.vf_coeff * vl - cfg.entropy_coeff * ent
  return loss, _update_stats(pg, vl, loss, ent, stats, jnp.float32(0.0), logp, mb.ref_logprobs,
                             mask)


def update(params, opt_state, rollout: Rollout, rng, *, model, tx, cfg: PPOConfig,
           batch_sharding=None, plan=None, kl_coef=0.0):
  """`ppo_epochs` passes over the rollout in `num_minibatches` shuffled minibatches, one
  optimizer step each, in one `lax.scan`. Returns (params, opt_state, stats stacked per
  minibatch step, in order: [ppo_epochs * num_minibatches]).

  `batch_sharding` (the mesh's batch split, `sharding.batch_sharding(mesh, 1)`): each shuffled
  minibatch is split over the devices again. Without it XLA gathers the shuffled rows onto
  every device and runs the minibatch's forward and backward replicated (seen in the
  compiled program: 4x the temporaries of the split minibatch, a tiny T5 on 64 devices).

  `plan` (one minibatch only): a packing of the rollout's contexts; each epoch then takes the
  rollout in its own order -- the loss is a mean over all its tokens, so the order changes only
  how floats are summed -- and the encoders run on the packed rows."""
  b = rollout.response_ids.shape[0]
  m = cfg.num_minibatches
  if plan is not None and m != 1:
    raise ValueError("a packing plan needs the rollout as one minibatch (num_minibatches=1)")
  if b % m:
    raise ValueError(f"{b} rollout rows cannot be split into {m} minibatches")
  orders = jnp.stack([jax.random.permutation(jax.random.fold_in(rng, e), b)
                      for e in range(cfg.ppo_epochs)]).reshape(cfg.ppo_epochs * m, b // m)

  def one(carry, rows):
    params, opt_state = carry
    if plan is None:
      mb = jax.tree.map(lambda x: jnp.take(x, rows, axis=0), rollout)
      if batch_sharding is not None and rows.shape[0] % batch_sharding.num_devices == 0:
        mb = jax.lax.with_sharding_constraint(mb, batch_sharding)
    else:
      mb = rollout
    if cfg.recipe == "original":
      (_, stats), grads = jax.value_and_grad(original_minibatch_loss, has_aux=True)(
          params, mb, model, cfg, kl_coef, jax.random.fold_in(rng, rows[0]))
    else:
      (_, stats), grads = jax.value_and_grad(minibatch_loss, has_aux=True)(params, mb, model,
                                                                           cfg, plan)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(jnp.add, params, updates)
    return (params, opt_state), stats

  (params, opt_state), stats = jax.lax.scan(one, (params, opt_state), orders)
  return params, opt_state, stats


def rollout_stats(r: Rollout, eos_token_id: int | None, kl_estimator: str = "k1") -> dict:
  """TRL's objective/* figures of a rollout (means over the sequences with tokens; sums over
  their tokens)."""
  mask = r.response_mask.astype(jnp.float32)
  rows = (mask.sum(1) > 0).astype(jnp.float32)
  mean = lambda x: jnp.sum(x * rows) / jnp.maximum(rows.sum(), 1.0)
  kl = jnp.sum(kl_penalty(r.old_logprobs, r.ref_logprobs, kl_estimator) * mask, axis=1)
  non_score = jnp.sum(r.rewards * mask, axis=1) - r.scores * rows
  eos = 0.0 if eos_token_id is None else jnp.sum((r.response_ids == eos_token_id) * mask)
  return {"objective/kl": mean(kl), "objective/scores": mean(r.scores),
          "objective/non_score_reward": mean(non_score),
          "objective/rlhf_reward": mean(r.scores + non_score),
          "val/num_eos_tokens": eos}
