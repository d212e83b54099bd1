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
import os

import flax
import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import preflight, ranges, settings, sharding
from empathy_jax.data.pipeline import make_batcher
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate
from empathy_jax.models import model_dir, reward_model
from empathy_jax.settings import setting
from empathy_jax.training import core, loop
from empathy_jax.training.optimizer import OptimizerConfig
from empathy_jax.training.ppo import rollout as R
from empathy_jax.training.ppo.trainer import (dialogue_split, greedy_scores, response_prefix,
                                              same_tokens, scored_responses)
from empathy_jax.training.run_config import TrainRunConfig

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
  return rewards - others


@dataclasses.dataclass(frozen=True, kw_only=True)
class GRPOConfig(TrainRunConfig):
  """Everything `train_grpo` needs."""

  dataset_dir: str = setting(help="Dialogue dataset folder (train/ and val/ contexts).")
  output_dir: str = setting(help="Run folder root (tensorboard_logs/version_N).")
  reward_model_dir: str = setting(help="Reward model: a run or folder of "
                                  "launch/train_reward_model.py, or an original reward .ckpt.")
  advantage: str = setting("grpo", "grpo: (r - group mean) / (group std + eps); rloo: r - the "
                           "mean of the group's other rewards.", ADVANTAGES)
  group_size: int = setting(4, "Responses sampled per context (G >= 2).")
  scale_rewards: bool = setting(True, "GRPO: divide by the group's standard deviation.")
  beta: float = setting(0.04, "KL coefficient (k3 estimator, in the loss; 0: no reference).")
  clip_epsilon: float = setting(0.2, "Ratio clipping of the updates.")
  num_iterations: int = setting(1, "Updates per generation (TRL's num_iterations).")
  max_epochs: int = setting(1, "Passes over the training contexts.")
  batch_size: int = setting(8, "Contexts per step (each with group_size responses).")
  max_new_tokens: int = setting(40, "Response tokens sampled.")
  temperature: float = setting(1.0, "Sampling temperature (and of the ratio's log-probs).")
  initial_lr: float = setting(1e-6, "AdamW learning rate, decayed linearly to 0 per update.")
  warmup_steps: int = setting(0, "Linear warmup updates.")
  weight_decay: float = setting(0.0, "AdamW weight decay.")
  clip_norm: float = setting(1.0, "Global gradient-norm clipping (0: off).")
  data_erasure_level: float = setting(0.3, "Fraction of instructions/knowledge erased.")
  max_train_examples: int | None = setting(None, "Use only the first N train contexts.")
  max_val_examples: int | None = setting(None, "Use only the first N val contexts.")
  log_interval: int = 1
  checkpoint_interval: int = 50

  def __post_init__(self):
    ranges.check(self)
    settings.check_choices(self)
    self.check_model_choice("the policy to start from (and the reference)")
    self.loop()
    if not self.reward_model_dir:
      raise ValueError("--reward_model_dir is required (a reward model of "
                       "launch/train_reward_model.py or an original reward .ckpt)")
    for name, low in (("group_size", 2), ("batch_size", 1), ("num_iterations", 1),
                      ("max_new_tokens", 1)):
      if getattr(self, name) < low:
        raise ValueError(f"--{name} must be >= {low}, got {getattr(self, name)}")
    if self.beta < 0 or self.temperature <= 0 or self.clip_epsilon <= 0:
      raise ValueError("--beta must be >= 0, --temperature and --clip_epsilon > 0")
    if not os.path.isdir(self.dataset_dir):
      raise ValueError(f"--dataset_dir {self.dataset_dir!r} does not exist")
    self.optimizer()

  def check_inputs(self) -> None:
    preflight.check_dialogue_dataset(self.dataset_dir, ("train", "val"))
    preflight.check_model_source(self.model or self.pretrained_model_dir)
    reward_model.check_source(self.reward_model_dir)
    preflight.check_writable(self.output_dir)

  def optimizer(self) -> OptimizerConfig:
    return OptimizerConfig(initial_lr=self.initial_lr, schedule="step",
                           warmup_steps=self.warmup_steps, weight_decay=self.weight_decay,
                           clip_norm=self.clip_norm)


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
  old, _ = R.policy_outputs(model, params["policy"], ctx, cmask, tgt, tgt_mask, gen.temperature)
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
  ratio = jnp.exp(logp - gen.old_logprobs)
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
    self.batcher = make_batcher(policy.fmt, cfg.batch_size)
    self.steps_per_epoch = self.batcher.num_batches(len(train[1]))
    base = resolve({}, {}, policy.model.cfg)
    self.gen = dataclasses.replace(base, max_new_tokens=cfg.max_new_tokens, sample=True,
                                   temperature=cfg.temperature, top_k=0, top_p=1.0,
                                   beam_width=1, min_length=0, no_repeat_ngram_size=0,
                                   encoder_no_repeat_ngram_size=0, forced_eos_token_id=None)
    self.greedy = dataclasses.replace(self.gen, sample=False, temperature=1.0)
    self.scorer = reward_model.RewardScorer(reward, cfg.batch_size * cfg.group_size, mesh)
    self.in_graph = same_tokens(policy.fmt, reward.backbone.fmt)
    # A copy placed from the host: never an alias of the policy's (donated) buffers.
    self.ref_params = sharding.shard_tree(jax.tree.map(np.asarray, policy.params),
                                          shardings.params["policy"])
    self._data = sharding.batch_sharding(mesh, 2)
    model = policy.model
    replicated = sharding.replicated(mesh)
    self._sample = jax.jit(functools.partial(sample_groups, model=model, gen=self.gen,
                                             g=cfg.group_size))
    rm_fmt, rm_model = reward.backbone.fmt, reward.backbone.model
    prefix = jnp.asarray(response_prefix(rm_fmt), jnp.int32)
    exclude, offset, g = reward.pool_exclude_id, reward.mean_offset, cfg.group_size

    def score(rm_params, gen: Generation, rm_ctx, rm_cmask):
      ids, mask = scored_responses(prefix, gen.response_ids, gen.response_mask, rm_fmt.eos_id,
                                   rm_fmt.pad_id)
      return reward_model.response_rewards(
          rm_model, rm_params, jnp.repeat(rm_ctx, g, axis=0), jnp.repeat(rm_cmask, g, axis=0),
          ids, mask, exclude_id=exclude) - offset

    self._score = jax.jit(score, out_shardings=replicated)
    self._update = jax.jit(functools.partial(update, model=model, tx=tx, cfg=cfg),
                           out_shardings=(shardings, replicated), donate_argnums=0)
    if self.in_graph:
      self._rm_contexts = [e.ids for e in rm_fmt.encode_contexts(train[0].contexts)]
      self._rm_batcher = make_batcher(rm_fmt, cfg.batch_size)

  def _host_batch(self, split, batch) -> dict:
    rows = np.maximum(batch.example_index_B, 0)
    ctx, cmask = sharding.from_host([batch.context_ids_BxC, batch.context_mask_BxC], self._data)
    real = batch.example_index_B >= 0
    return {"ctx": ctx, "cmask": cmask, "rows": sharding.replicate(rows, self.mesh),
            "row_ids": rows, "contexts": [split.contexts[i] for i in rows], "real": real,
            "real_dev": sharding.replicate(real.astype(np.float32), self.mesh),
            "tokens": int(batch.context_mask_BxC.sum())}

  def batches(self, epoch, start_batch):
    split, table = self.train
    for batch in self.batcher.batches(table, self.cfg.seed, epoch, start_batch):
      out = self._host_batch(split, batch)
      if self.in_graph:
        rows = out["row_ids"]
        rm = self._rm_batcher.make_batch([self._rm_contexts[i] for i in rows],
                                         [[self.reward.backbone.fmt.pad_id]] * len(rows),
                                         range(len(rows)))
        out["rm_ctx"], out["rm_cmask"] = sharding.from_host(
            [rm.context_ids_BxC, rm.context_mask_BxC], self._data)
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
                                   self._host_batch(split, batch), self.greedy, self.scorer)
      rewards.extend(scores)
    return {"val_reward": float(np.mean(rewards)), "val_reward_std": float(np.std(rewards))}

  def save_model(self, state, path, metadata):
    model_dir.save(dataclasses.replace(self.policy, params=state.params["policy"]), path,
                   metadata=metadata)


class GRPO(core.Algorithm):
  """GRPO / RLOO for `core.run`: the policy in `{"policy": ...}` (no critic)."""

  def prepare(self, cfg: GRPOConfig, mesh) -> None:
    shards = sharding.batch_shards(mesh)
    if cfg.batch_size % shards:
      raise ValueError(f"--batch_size {cfg.batch_size} must be a multiple of the mesh's {shards} "
                       f"batch shards (data x fsdp)")

  def build(self, cfg: GRPOConfig, loaded, prepared, mesh) -> core.Setup:
    reward = reward_model.load(cfg.reward_model_dir, trust_pickle=cfg.trust_pickle)
    train = dialogue_split(cfg, "train", cfg.max_train_examples, loaded.fmt)
    val = dialogue_split(cfg, "val", cfg.max_val_examples, loaded.fmt)
    steps = make_batcher(loaded.fmt, cfg.batch_size).num_batches(len(train[1]))
    state, shardings, tx, lr_fn = core.adamw_state(
        cfg, {"policy": loaded.params}, {"policy": loaded.model.abstract_params()},
        steps * num_updates(cfg), mesh, cfg.seed)
    task = GRPOTask(cfg, loaded, reward, train, val, mesh, shardings, tx, lr_fn)
    return core.Setup(task, state)


def train_grpo(cfg: GRPOConfig) -> dict:
  """GRPO- or RLOO-trains the policy; returns the loop's summary."""
  return core.run(cfg, GRPO())
