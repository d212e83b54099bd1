"""GRPO and RLOO (`launch/train_grpo.py --advantage grpo|rloo`) with the reward model, on the
trainer core: no critic.

Each step samples `group_size` G responses to each of the batch's contexts from the current
policy, scores them with the reward model (in the graph when it reads the policy's token ids,
as PPO does), and turns each group's scores into advantages relative to the group: GRPO's
(r - mean) / (std + eps), std with Bessel's correction as TRL's, or RLOO's r - (mean of the
others). `num_iterations` clipped updates then follow on that generation (TRL's `num_iterations`
mu), with the KL to the reference in the loss (the k3 estimator, TRL's `beta`). Per-token
losses are averaged over each response and then over the responses (TRL's loss_type "grpo").
Memory: the policy, its reference and the reward model.
"""

from __future__ import annotations

import dataclasses
import functools

import flax
import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import sharding
from empathy_jax.data.pipeline import make_batcher
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate
from empathy_jax.models import model_dir, reward_model
from empathy_jax.settings import setting
from empathy_jax.training import core, loop
from empathy_jax.training.ppo import rollout as R
from empathy_jax.training.ppo.trainer import (ContextBatches, RLRunConfig, greedy_scores,
                                              rl_inputs, same_tokens, score_program)
from empathy_jax.training.state import jit_update

ADVANTAGES = ("grpo", "rloo")


def group_advantages(rewards_BxG, scale_by_std: bool = True, eps: float = 1e-4):
  """GRPO's advantages: each reward minus its group's mean, divided by the group's standard
  deviation (Bessel-corrected, TRL's) + eps when `scale_by_std`."""
  rewards = jnp.asarray(rewards_BxG, jnp.float32)
  centred = rewards - jnp.mean(rewards, axis=1, keepdims=True)
  # A group of equal rewards carries no signal: exactly 0, not its mean's rounding error / eps.
  tied = jnp.all(rewards == rewards[:, :1], axis=1, keepdims=True)
  centred = jnp.where(tied, 0.0, centred)
  if not scale_by_std:
    return centred
  return centred / (jnp.std(rewards, axis=1, keepdims=True, ddof=1) + eps)


def rloo_advantages(rewards_BxG):
  """RLOO's advantages: each reward minus the mean of the other G - 1 rewards of its group."""
  rewards = jnp.asarray(rewards_BxG, jnp.float32)
  g = rewards.shape[1]
  others = (jnp.sum(rewards, axis=1, keepdims=True) - rewards) / (g - 1)
  tied = jnp.all(rewards == rewards[:, :1], axis=1, keepdims=True)  # exactly 0, as GRPO's
  return jnp.where(tied, 0.0, rewards - others)


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRPOConfig(RLRunConfig):
  """Everything `train_grpo` needs."""

  advantage: str = setting("grpo", "grpo: (r - group mean) / (group std + eps); rloo: r - the "
                           "mean of the group's other rewards.", ADVANTAGES)
  group_size: int = setting(4, "Responses sampled per context (G >= 2).")
  scale_rewards: bool = setting(True, "GRPO: divide by the group's standard deviation.")
  beta: float = setting(0.04, "KL coefficient (k3 estimator, in the loss; 0: no KL term, the "
                        "reference's log-probs are still computed for the logged kl).")
  clip_epsilon: float = setting(0.2, "Ratio clipping of the updates.")
  num_iterations: int = setting(1, "Updates per generation (TRL's num_iterations).")
  max_epochs: int = setting(1, "Passes over the training contexts.")
  batch_size: int = setting(8, "Contexts per step (each with group_size responses).")
  max_new_tokens: int = setting(40, "Response tokens sampled.")
  initial_lr: float = setting(1e-6, "AdamW learning rate, decayed linearly to 0 per update.")
  weight_decay: float = setting(0.0, "AdamW weight decay.")
  clip_norm: float = setting(1.0, "Global gradient-norm clipping (0: off).")
  log_interval: int = 1
  checkpoint_interval: int = 50

  MODEL_ROLE = "the policy to start from (and the reference)"

  def check(self) -> None:
    super().check()
    if self.group_size < 2:
      raise ValueError(f"--group_size must be >= 2 (advantages compare a group), got "
                       f"{self.group_size}")
    if self.beta < 0:
      raise ValueError(f"--beta must be >= 0, got {self.beta}")


@flax.struct.dataclass
class Generation:
  """One step's sampled group: [B*G] rows, G consecutive rows per context."""

  context_ids: jax.Array
  context_mask: jax.Array
  target_ids: jax.Array      # the teacher-forced replay
  target_mask: jax.Array
  response_ids: jax.Array    # [B*G, N]
  response_mask: jax.Array
  old_logprobs: jax.Array
  ref_logprobs: jax.Array


def sample_groups(params, ref_params, ctx_BxC, cmask_BxC, rows_B, rng, *, model, gen, g: int):
  """G sampled responses per context (row id r*G + i keys sample i of context r), their
  teacher-forced replay and old/reference log-probs."""
  ctx, cmask = jnp.repeat(ctx_BxC, g, axis=0), jnp.repeat(cmask_BxC, g, axis=0)
  rows = (jnp.repeat(rows_B, g) * g + jnp.tile(jnp.arange(g), rows_B.shape[0])).astype(jnp.int32)
  out = generate(model, params["policy"], ctx, cmask, gen, rng, rows)
  real = (cmask.sum(1) > 0)[:, None]
  response_mask = out.mask_BxN * real
  tgt, tgt_mask = R.teacher_forced(model, out.tokens_BxN, response_mask,
                                   gen.decoder_start_token_id)
  mask = response_mask.astype(jnp.float32)
  # The old log-probs: the sampling pass's own (the untruncated distribution at the sampling
  # temperature, no dropout) where they equal the replay's, else the replay.
  if R.sampling_logprobs_exact(model):
    old = out.logprobs_BxN
  else:
    old, _ = R.policy_outputs(model, params["policy"], ctx, cmask, tgt, tgt_mask,
                              gen.temperature)
  ref, _ = R.policy_outputs(model, ref_params, ctx, cmask, tgt, tgt_mask, gen.temperature)
  return Generation(ctx, cmask, tgt, tgt_mask, out.tokens_BxN, response_mask, old * mask,
                    ref * mask)


def k3(logp, ref_logp):
  """Schulman's k3 estimator of KL(policy || reference) per token: exp(d) - d - 1, d = ref -
  logp (non-negative, unbiased)."""
  d = ref_logp - logp
  return jnp.exp(d) - d - 1.0


def grpo_loss(params, gen: Generation, advantages_N, *, model, cfg: GRPOConfig):
  """(loss, stats): the clipped objective with the k3 KL per token, averaged over each
  response's tokens, then over responses."""
  mask = gen.response_mask.astype(jnp.float32)
  logp, _ = R.policy_outputs(model, params["policy"], gen.context_ids, gen.context_mask,
                             gen.target_ids, gen.target_mask, cfg.temperature)
  # One update per generation: the policy is the sampler, so the ratio is exactly 1 (TRL's
  # detach); the sampler's log-probs, from another program, would differ in the last bits.
  old = jax.lax.stop_gradient(logp) if cfg.num_iterations == 1 else gen.old_logprobs
  ratio = jnp.exp(logp - old)
  adv = advantages_N[:, None]
  clipped = jnp.clip(ratio, 1.0 - cfg.clip_epsilon, 1.0 + cfg.clip_epsilon)
  objective = jnp.minimum(ratio * adv, clipped * adv)
  kl = k3(logp, gen.ref_logprobs)
  per_token = -(objective - cfg.beta * kl)
  lengths = jnp.maximum(mask.sum(1), 1.0)
  rows = (mask.sum(1) > 0).astype(jnp.float32)
  per_row = lambda x: jnp.sum(x * mask, axis=1) / lengths
  mean = lambda x: jnp.sum(per_row(x) * rows) / jnp.maximum(rows.sum(), 1.0)
  was_clipped = ((ratio < 1.0 - cfg.clip_epsilon) & (adv < 0)) | (
      (ratio > 1.0 + cfg.clip_epsilon) & (adv > 0))
  return mean(per_token), {"kl": mean(kl), "clip_ratio": mean(was_clipped.astype(jnp.float32))}


def advantages(scores_BxG, cfg: GRPOConfig):
  if cfg.advantage == "rloo":
    return rloo_advantages(scores_BxG)
  return group_advantages(scores_BxG, scale_by_std=cfg.scale_rewards)


def programs(model, tx, shardings, mesh, cfg: GRPOConfig, gen):
  """(sample, update): the group sampling (`sample_groups` at generation settings `gen`) and
  the update (the state donated), as the trainer, plan.py and the benchmark all compile them;
  scoring is `ppo.trainer.score_program(reward, mesh, cfg.group_size)`."""
  sample = jax.jit(functools.partial(sample_groups, model=model, gen=gen, g=cfg.group_size))
  return sample, jit_update(functools.partial(update, model=model, tx=tx, cfg=cfg), shardings,
                            mesh)


def update(state, gen: Generation, scores_N, real_B, *, model, tx, cfg: GRPOConfig):
  """Group advantages and `num_iterations` optimizer steps on one generation."""
  g = cfg.group_size
  scores = scores_N.reshape(-1, g)
  adv = advantages(scores, cfg).reshape(-1) * jnp.repeat(real_B, g)

  def one(carry, _):
    params, opt_state = carry
    (loss, stats), grads = jax.value_and_grad(grpo_loss, has_aux=True)(params, gen, adv,
                                                                       model=model, cfg=cfg)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (jax.tree.map(jnp.add, params, updates), opt_state), {"loss": loss, **stats}

  (params, opt_state), stats = jax.lax.scan(one, (state.params, state.opt_state), None,
                                            length=cfg.num_iterations)
  mask = gen.response_mask.astype(jnp.float32)
  real = jnp.repeat(real_B, g)
  n = jnp.maximum(real.sum(), 1.0)
  group_std = jnp.std(scores, axis=1, ddof=1)
  metrics = {k: v.mean() for k, v in stats.items()}
  metrics.update({"reward": jnp.sum(scores_N * real) / n,
                  "reward_std": jnp.sum(group_std * real_B) / jnp.maximum(real_B.sum(), 1.0),
                  "completions/mean_length": jnp.sum(mask.sum(1) * real) / n})
  return state.replace(step=state.step + num_updates(cfg), params=params,
                       opt_state=opt_state), metrics


def num_updates(cfg: GRPOConfig) -> int:
  return cfg.num_iterations


class GRPOTask(loop.Task):
  """Each step: sample groups, score them, `num_iterations` updates."""

  monitor, monitor_mode = "val_reward", "max"
  progress_keys = ("reward", "kl")

  def __init__(self, cfg: GRPOConfig, policy, reward, train, val, mesh, shardings, tx, lr_fn):
    self.cfg, self.policy, self.reward, self.mesh = cfg, policy, reward, mesh
    self.train, self.val = train, val
    self.lr_fn = jax.jit(lr_fn)
    base = resolve({}, {}, policy.model.cfg)
    self.gen = dataclasses.replace(base, max_new_tokens=cfg.max_new_tokens, sample=True,
                                   temperature=cfg.temperature, top_k=0, top_p=1.0,
                                   beam_width=1, min_length=0, no_repeat_ngram_size=0,
                                   encoder_no_repeat_ngram_size=0, forced_eos_token_id=None)
    self.greedy = dataclasses.replace(self.gen, sample=False, temperature=1.0)
    self.scorer = reward_model.RewardScorer(reward, cfg.batch_size * cfg.group_size, mesh)
    self.in_graph = same_tokens(policy.fmt, reward.backbone.fmt)
    self.contexts = ContextBatches(policy, reward, train, cfg.batch_size, mesh, self.in_graph)
    self.steps_per_epoch = self.contexts.num_batches
    # A copy placed from the host: never an alias of the policy's (donated) buffers.
    self.ref_params = sharding.shard_tree(jax.tree.map(np.asarray, policy.params),
                                          shardings.params["policy"])
    self._sample, self._update = programs(policy.model, tx, shardings, mesh, cfg, self.gen)
    self._score = score_program(reward, mesh, cfg.group_size)

  def batches(self, epoch, start_batch):
    for _, out in self.contexts.train_batches(self.cfg.seed, epoch, start_batch):
      out["real_dev"] = sharding.replicate(out["real"].astype(np.float32), self.mesh)
      yield out

  def step(self, state, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    gen = self._sample(state.params, self.ref_params, batch["ctx"], batch["cmask"],
                       batch["rows"], rng)
    if self.in_graph:
      scores = self._score(self.scorer.params, gen, batch["rm_ctx"], batch["rm_cmask"])
    else:  # another tokenizer: the responses as text, in the reward model's format
      ids, mask = sharding.to_host((gen.response_ids, gen.response_mask))
      texts = [self.policy.fmt.decode(row[m == 1]) for row, m in zip(ids, mask)]
      contexts = [c for c in batch["contexts"] for _ in range(self.cfg.group_size)]
      scores = sharding.replicate(self.scorer(contexts, texts), self.mesh)
    return self._update(state, gen, scores, batch["real_dev"])

  def real_tokens(self, batch) -> int:
    return batch["tokens"]

  def episodes(self, batch) -> int:
    return int(batch["real"].sum()) * self.cfg.group_size

  def learning_rate(self, step):  # the loop counts generations; the schedule, updates
    return float(self.lr_fn(step * num_updates(self.cfg)))

  def validate(self, state):
    split, table = self.val
    rewards = []
    for batch in make_batcher(self.policy.fmt, self.cfg.batch_size).batches(table):
      _, _, scores = greedy_scores(self.policy, state.params["policy"],
                                   self.contexts.host_batch(split, batch), self.greedy,
                                   self.scorer)
      rewards.extend(scores)
    return {"val_reward": float(np.mean(rewards)), "val_reward_std": float(np.std(rewards))}

  def save_model(self, state, path, metadata):
    model_dir.save(dataclasses.replace(self.policy, params=state.params["policy"]), path,
                   metadata=metadata)


class GRPO(core.Algorithm):
  """GRPO / RLOO for `core.run`: the policy in `{"policy": ...}` (no critic)."""

  def prepare(self, cfg: GRPOConfig, mesh) -> None:
    core.check_batch_shards(cfg.batch_size, mesh)

  def build(self, cfg: GRPOConfig, loaded, prepared, mesh) -> core.Setup:
    reward, train, val, steps = rl_inputs(cfg, loaded)
    state, shardings, tx, lr_fn = core.adamw_state(
        cfg, {"policy": loaded.params}, {"policy": loaded.model.abstract_params()},
        steps * num_updates(cfg), mesh, cfg.seed)
    task = GRPOTask(cfg, loaded, reward, train, val, mesh, shardings, tx, lr_fn)
    return core.Setup(task, state)


def train_grpo(cfg: GRPOConfig) -> dict:
  """GRPO- or RLOO-trains the policy; returns the loop's summary."""
  return core.run(cfg, GRPO())
