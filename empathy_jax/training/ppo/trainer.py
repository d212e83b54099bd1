"""PPO of a dialogue policy against a reward model (`launch/train_rlhf_pipeline.py`) on the
trainer core.

Each step takes `batch_size` training contexts: samples responses from the current policy,
scores them with the reward model (`mean_offset` subtracted), and makes `ppo_epochs` x
`num_minibatches` clipped updates (`ppo.step`). When the reward model reads the policy's token
ids (same family and vocabulary) the whole iteration is one jitted program; otherwise the
responses are decoded and re-encoded in the reward model's format between the rollout and the
update (the original's path). The KL coefficient lives in the train state (an adaptive
controller with `--kl_target`), so resume is exact. Each epoch: greedy responses on the
validation contexts, their mean reward `val_reward`; `best/` holds the policy with the highest
one, as a dialogue model folder `test.py` loads. Under `--recipe original`, `best/` is the
policy with the lowest `val_loss` (the PPO loss on those responses, in eval mode), the
checkpoint the original's test-time loader picks.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
import types

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import preflight, sharding
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.data.pipeline import make_batcher, tokenize_split
from empathy_jax.generation.config import GenerationConfig, resolve
from empathy_jax.generation.search import generate_ids
from empathy_jax.models import heads, model_dir, packing, reward_model
from empathy_jax.settings import setting
from empathy_jax.training import core, loop
from empathy_jax.training.optimizer import make_optimizer
from empathy_jax.training.ppo import rollout as R, step as S
from empathy_jax.training.run_config import TrainRunConfig
from empathy_jax.training.state import abstract_state, jit_update, state_shardings


# `--recipe original`: the original's update (`ppo.step.original_minibatch_loss`) and the
# settings it fixes; a flag given another value than these is refused with the recipe.
ORIGINAL_RECIPE = dict(ratio_against="reference", critic="shared", ppo_epochs=1,
                       num_minibatches=1, value_clip=0.0, value_head_dropout=0.5,
                       value_head_init="torch", whiten_rewards=False, kl_target=0.0,
                       kl_estimator="k1", missing_eos_penalty=0.0)
VALUE_HEAD_INITS = ("zeros", "torch")
KL_ESTIMATORS = ("k1", "k3")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RLRunConfig(TrainRunConfig):
  """What the algorithms that sample from the policy and score with a reward model (PPO, GRPO,
  RLOO) share."""

  dataset_dir: str = setting(help="Dialogue dataset folder (train/ and val/ contexts).")
  reward_model_dir: str = setting(help="Reward model: a run or folder of "
                                  "launch/train_reward_model.py, or an original reward .ckpt / "
                                  "run folder.")
  data_erasure_level: float = setting(0.3, "Fraction of instructions/knowledge erased.")
  temperature: float = setting(1.0, "Sampling temperature of the rollouts (and of the ratio).")
  max_train_examples: int | None = setting(None, "Use only the first N train contexts.")
  max_val_examples: int | None = setting(None, "Use only the first N val contexts.")

  def check(self) -> None:
    if not self.reward_model_dir:
      raise ValueError("--reward_model_dir is required (a reward model of "
                       "launch/train_reward_model.py or an original reward .ckpt)")

  def check_inputs(self) -> None:
    preflight.check_dialogue_dataset(self.dataset_dir, ("train", "val"))
    preflight.check_model_source(self.model or self.pretrained_model_dir)
    reward_model.check_source(self.reward_model_dir)
    preflight.check_writable(self.output_dir)


# The PPO update's settings take their defaults from the update's own config (one source).
PPO_DEFAULTS = {f.name: f.default for f in dataclasses.fields(S.PPOConfig)}


def _ppo_setting(name: str, help: str, choices=None):  # pylint: disable=redefined-builtin
  """A setting of `S.PPOConfig` as a flag, with the update config's default."""
  return setting(PPO_DEFAULTS[name], help, choices)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PPORunConfig(RLRunConfig):
  """`train_rlhf_pipeline`'s flags: the original's names and defaults, plus the PPO settings
  the original fixed or lacked."""

  max_epochs: int = setting(10, "Passes over the training contexts.")
  batch_size: int = setting(8, "Contexts (episodes) per rollout.")
  initial_lr: float = setting(1e-5, "AdamW learning rate (linear decay over all updates; "
                              "per epoch with --recipe original).")
  max_new_tokens: int = setting(100, "Response tokens sampled per rollout.")
  beam_width: int = setting(1, "The original's flag; PPO rollouts take 1 (one sampled response "
                            "per context).")
  sample: bool = setting(True, "The original's flag; PPO rollouts sample (--no_sample, greedy, "
                         "is refused).")
  top_k: int = setting(0, "Top-k truncation of the rollouts' sampling (0: off); the log-probs "
                       "of the ratio are those of the truncated distribution.")
  top_p: float = setting(1.0, "Nucleus truncation of the rollouts' sampling (1: off); the "
                         "log-probs of the ratio are those of the truncated distribution.")
  length_alpha: float | None = setting(None, "The original's beam length penalty; no effect on "
                                       "one sampled response.")
  clip_epsilon: float = _ppo_setting("clip_epsilon", "PPO ratio clipping.")
  kl_penalty: float = setting(0.0, "KL coefficient (the initial one with --kl_target).")
  gamma: float = _ppo_setting("gamma", "Discount.")
  lam: float = _ppo_setting("lam", "GAE lambda.")
  vf_coeff: float = _ppo_setting("vf_coeff", "Value-loss coefficient.")
  entropy_coeff: float = _ppo_setting("entropy_coeff", "Entropy-bonus coefficient.")
  ppo_epochs: int = _ppo_setting("ppo_epochs", "Passes over each rollout (TRL's "
                                 "num_ppo_epochs).")
  num_minibatches: int = _ppo_setting("num_minibatches", "Minibatches per pass (updates per "
                                      "pass).")
  kl_estimator: str = _ppo_setting("kl_estimator", "Per-token KL estimator.", KL_ESTIMATORS)
  kl_target: float = _ppo_setting("kl_target", "Adaptive KL controller's target (0: fixed "
                                  "--kl_penalty).")
  kl_horizon: int = _ppo_setting("kl_horizon", "Adaptive KL controller's horizon (episodes).")
  value_clip: float = _ppo_setting("value_clip", "Value-loss clipping around the rollout's "
                                   "values (0: off).")
  missing_eos_penalty: float = _ppo_setting("missing_eos_penalty", "Subtracted from the score "
                                            "of a response without EOS.")
  whiten_rewards: bool = _ppo_setting("whiten_rewards", "Whiten per-token rewards (TRL's "
                                      "whiten_rewards).")
  ratio_against: str = _ppo_setting("ratio_against", "Policy ratio against the rollout policy "
                                    "(correct) or the frozen reference (the original's, for "
                                    "comparisons).", ("rollout", "reference"))
  reference_dtype: str = setting("float32", "Storage dtype of the frozen reference's weights "
                                 "(bfloat16 halves its memory; layers compute in --dtype).",
                                 ("float32", "bfloat16"))
  critic: str = setting("separate", "separate: its own backbone (from the reward model's when "
                        "it has the policy's architecture, else a copy of the policy); shared: "
                        "a value head on the policy.", ("separate", "shared"))
  recipe: str = _ppo_setting(
      "recipe", "original: the original's update as it ran (one step per rollout batch, ratio "
      "against the reference, advantages and returns = whitened advantages + values inside the "
      "step, a value head with dropout on the policy, log-probs of the whole distribution, "
      "rollouts sampled with dropout on, the LR decayed per epoch, best/ by the lowest "
      "val_loss; docs/differences.md). Flags it fixes may be left out.", S.RECIPES)
  value_head_dropout: float = _ppo_setting("value_head_dropout", "Dropout before the value "
                                           "head (--recipe original: 0.5, the original's "
                                           "nn.Dropout()).")
  value_head_init: str = setting("zeros", "Value head start: zeros (TRL's) or torch.nn.Linear's "
                                 "uniform init (the original's).", VALUE_HEAD_INITS)
  log_interval: int = 1
  checkpoint_interval: int = 50

  MODEL_ROLE = "the fine-tuned policy to start from"

  def complete(self) -> None:
    if self.recipe == "original":
      self._apply_recipe(ORIGINAL_RECIPE)

  def check(self) -> None:
    super().check()
    if self.batch_size % self.num_minibatches:
      raise ValueError(f"--batch_size {self.batch_size} must be divisible by "
                       f"--num_minibatches {self.num_minibatches}")
    if self.kl_target < 0 or self.kl_horizon < 1:
      raise ValueError("--kl_target must be >= 0 and --kl_horizon >= 1")
    self.ppo(GenerationConfig())  # validates the PPO settings

  def _apply_recipe(self, recipe: dict) -> None:
    """Sets the recipe's values on fields left at their defaults; a field set to something else
    contradicts the recipe and is refused."""
    defaults = {f.name: f.default for f in dataclasses.fields(self)}
    for name, value in recipe.items():
      given = getattr(self, name)
      if given != value and given != defaults[name]:
        raise ValueError(f"--{name} {given} contradicts --recipe {self.recipe}, which uses "
                         f"{value}")
      object.__setattr__(self, name, value)

  def schedule(self) -> str:
    # The original decays the learning rate linearly per epoch; ours per update step.
    return "epoch" if self.recipe == "original" else "step"

  def ppo(self, base_generation) -> S.PPOConfig:
    return ppo_config(self, base_generation)


def ppo_config(run, base_generation) -> S.PPOConfig:
  """The update's static config from a run's settings (`run`: a `PPORunConfig`, or anything
  with its fields). Rollouts sample at `--temperature`, truncated by `--top_k`/`--top_p` (the
  same truncation enters the log-probs), with every other logits processor off.
  `--length_alpha` is the original's beam length penalty: accepted, and without effect on one
  sampled sequence."""
  gen = dataclasses.replace(base_generation, max_new_tokens=run.max_new_tokens,
                            sample=run.sample, temperature=run.temperature, top_k=run.top_k,
                            top_p=run.top_p, beam_width=run.beam_width,
                            length_alpha=(base_generation.length_alpha
                                          if run.length_alpha is None else run.length_alpha),
                            min_length=0, no_repeat_ngram_size=0,
                            encoder_no_repeat_ngram_size=0, forced_eos_token_id=None)
  same = {name: getattr(run, name) for name in PPO_DEFAULTS if hasattr(run, name)}
  return S.PPOConfig(**same, generation=gen, shared_critic=run.critic == "shared",
                     policy_dropout=run.recipe == "original")


def default_ppo_config(base_generation, **given) -> S.PPOConfig:
  """`ppo_config` of `train_rlhf_pipeline`'s defaults, `given` overriding some (the planner's
  and the benchmarks' PPO): no dataset, reward model or run folder needed."""
  defaults = {f.name: f.default for f in dataclasses.fields(PPORunConfig)}
  return ppo_config(types.SimpleNamespace(**{**defaults, **given}), base_generation)


@flax.struct.dataclass
class PPOState:
  """params: {"policy", "critic"}; kl_coef: the (adaptive) KL coefficient; the rest as
  `training.state.TrainState`."""

  step: jax.Array
  params: dict
  opt_state: object
  rng: jax.Array
  kl_coef: jax.Array


def adaptive_kl(kl_coef, kl_mean, batch_size: int, target: float, horizon: int):
  """Ziegler et al.'s controller (TRL's AdaptiveKLController); fixed when target is 0."""
  if not target:
    return kl_coef
  error = jnp.clip(kl_mean / target - 1.0, -0.2, 0.2)
  return kl_coef * (1.0 + error * batch_size / horizon)


def same_tokens(policy_fmt, reward_fmt) -> bool:
  """Whether the reward model reads the policy's token ids (no text round trip needed)."""
  return (policy_fmt.family == reward_fmt.family
          and policy_fmt.tokenizer.get_vocab() == reward_fmt.tokenizer.get_vocab())


def response_prefix(fmt) -> list[int]:
  """The ids a target starts with in `fmt` (GODEL's `<PAD>`, BlenderBot's `<s>`), before the
  text: prepended to generated tokens to score them in the reward model's training format."""
  ids = fmt.encode_target("").ids
  return ids[:-1] if ids and ids[-1] == fmt.eos_id else ids


def scored_responses(prefix_P, response_ids_BxN, response_mask_BxN, eos_id: int, pad_id: int):
  """(ids [B, P+N+1], mask) of sampled responses as the reward model reads them in the graph:
  the format's target prefix, the response, and `eos_id` after a response cut off at
  `max_new_tokens` -- what decoding and re-encoding the text would give (every format's target
  ends with EOS), so a response is scored the same way whichever path scores it."""
  b, n = response_ids_BxN.shape
  p = prefix_P.shape[0]
  mask = jnp.asarray(response_mask_BxN, jnp.int32)
  ids = jnp.concatenate([jnp.broadcast_to(prefix_P, (b, p)), response_ids_BxN,
                         jnp.full((b, 1), pad_id, response_ids_BxN.dtype)], 1)
  full_mask = jnp.concatenate([jnp.ones((b, p), jnp.int32), mask, jnp.zeros((b, 1), jnp.int32)],
                              1)
  cut = ~jnp.any((response_ids_BxN == eos_id) & (mask > 0), axis=1) & (mask.sum(1) > 0)
  at = (jnp.arange(p + n + 1)[None, :] == (p + mask.sum(1))[:, None]) & cut[:, None]
  return jnp.where(at, eos_id, ids), jnp.where(at, 1, full_mask)


def reward_in_graph(reward, repeat: int = 1):
  """The reward model scoring the policy's token ids in the graph, in its target format:
  f(rm_params, response_ids [N, T], response_mask, rm_ctx [B, C], rm_cmask) -> [N] rewards
  (`mean_offset` subtracted), N = B x `repeat` (consecutive responses to one context)."""
  fmt, model = reward.backbone.fmt, reward.backbone.model
  prefix = jnp.asarray(response_prefix(fmt), jnp.int32)

  def score(rm_params, response_ids, response_mask, rm_ctx, rm_cmask):
    ids, mask = scored_responses(prefix, response_ids, response_mask, fmt.eos_id, fmt.pad_id)
    if repeat > 1:
      rm_ctx, rm_cmask = jnp.repeat(rm_ctx, repeat, axis=0), jnp.repeat(rm_cmask, repeat, axis=0)
    return reward_model.response_rewards(model, rm_params, rm_ctx, rm_cmask, ids, mask,
                                         exclude_id=reward.pool_exclude_id) - reward.mean_offset
  return score


def score_program(reward, mesh, repeat: int = 1):
  """`reward_in_graph` jitted as PPO, GRPO/RLOO and their benchmarks run it: (rm_params, a
  rollout or generation with response_ids / response_mask, rm_ctx, rm_cmask) -> [N] rewards,
  replicated."""
  in_graph = reward_in_graph(reward, repeat)

  def score(rm_params, out, rm_ctx, rm_cmask):
    return in_graph(rm_params, out.response_ids, out.response_mask, rm_ctx, rm_cmask)

  return jax.jit(score, out_shardings=sharding.replicated(mesh))


def _trl_names(stats: dict) -> dict:
  """Per-minibatch update stats -> TRL's logged names (means over the minibatch steps)."""
  renamed = {"entropy": "objective/entropy", "val/ratio": "val/ratio"}
  return {renamed.get(k, f"{k}_avg"): v.mean() for k, v in stats.items()}


def context_plan(model, context_mask_BxC, mesh, ppo: S.PPOConfig):
  """The packing of a rollout batch's contexts for its teacher-forced passes and its update
  (encoder-decoder policies, one minibatch), placed on `mesh`; None otherwise or when the
  batch does not fit. Its shapes are fixed -- 3/4 of each shard's rows, a slot per example --
  so every batch of a run uses the same two programs (packed, and unpacked for the rare
  batch that does not fit)."""
  if not model.is_encoder_decoder or ppo.num_minibatches != 1:
    return None
  shards = sharding.batch_shards(mesh)
  per_shard = context_mask_BxC.shape[0] // shards
  plan = packing.encoder_plan(model, context_mask_BxC, shards,
                              rows_per_shard=max(1, -(-3 * per_shard // 4)), group=per_shard)
  return packing.place(plan, mesh)


def sample_rollout(state: PPOState, ref_params, ctx, cmask, rows, plan=None, *, model,
                   ppo: S.PPOConfig) -> S.Rollout:
  """This step's rollout (`ppo.step.sample`) from the state's policy, its key derived from
  the state's PRNG and step."""
  rng = jax.random.fold_in(state.rng, state.step)
  return S.sample(model, state.params, ref_params, ctx, cmask, jax.random.fold_in(rng, 0),
                  rows, cfg=ppo, plan=plan)


def finish_and_update(state: PPOState, r: S.Rollout, scores, plan=None, *, model, tx,
                      ppo: S.PPOConfig, mesh=None):
  """The scored rollout -> rewards and advantages, `ppo_epochs` x `num_minibatches` updates,
  the KL controller's step: (new state, metrics). `mesh`: minibatches stay split over it;
  `plan`: `context_plan` of the rollout's contexts."""
  r = S.finish(r, scores, state.kl_coef, cfg=ppo)
  rng = jax.random.fold_in(state.rng, state.step)
  split = None if mesh is None else sharding.batch_sharding(mesh, 1)
  params, opt_state, stats = S.update(state.params, state.opt_state, r,
                                      jax.random.fold_in(rng, 1), model=model, tx=tx, cfg=ppo,
                                      batch_sharding=split, plan=plan, kl_coef=state.kl_coef)
  summary = S.rollout_stats(r, ppo.generation.eos_token_id, ppo.kl_estimator)
  kl_coef = adaptive_kl(state.kl_coef, summary["objective/kl"], scores.shape[0],
                        ppo.kl_target, ppo.kl_horizon)
  metrics = {**summary, **_trl_names(stats), "loss": stats["loss/total"].mean(),
             "kl_coef": state.kl_coef}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                       kl_coef=kl_coef), metrics


def update_programs(model, tx, ppo: S.PPOConfig, mesh, shardings: PPOState):
  """(sample, finish): the rollout program (`sample_rollout`) and the finish + update program
  (`finish_and_update`, the state donated), as the trainer, the benchmark and plan.py all
  compile them. Weights are arguments, never constants baked into a program."""
  sample = jax.jit(functools.partial(sample_rollout, model=model, ppo=ppo))
  finish = jit_update(functools.partial(finish_and_update, model=model, tx=tx, ppo=ppo,
                                        mesh=mesh), shardings, mesh)
  return sample, finish


class Programs:
  """One PPO iteration as three jitted programs -- rollout (`ppo.step.sample`), scoring,
  `finish` + `update` -- over the sharded state, dispatched without waiting (the trainer's and
  the benchmark's). When the reward model reads the policy's token ids, scoring runs on them
  in the graph; otherwise on the decoded text in the reward model's format (the original's
  path)."""

  def __init__(self, cfg: PPORunConfig, ppo: S.PPOConfig, policy, reward, mesh, shardings, tx):
    self.cfg, self.ppo, self.policy, self.mesh, self.tx = cfg, ppo, policy, mesh, tx
    model = policy.model
    self.ref_params = sharding.shard_tree(R.stored_as(policy.params, cfg.reference_dtype),
                                          shardings.params["policy"])
    self.scorer = reward_model.RewardScorer(reward, cfg.batch_size, mesh)
    self.rm_params = self.scorer.params  # placed on the mesh once, for both scoring paths
    self.in_graph = same_tokens(policy.fmt, reward.backbone.fmt)
    self.sample, self.finish = update_programs(model, tx, ppo, mesh, shardings)
    self.score = score_program(reward, mesh)

  def iteration(self, state, batch: dict, timed: bool):
    """(new state, metrics): `batch` holds ctx, cmask, rows (device arrays), contexts (text)
    and, for in-graph scoring, rm_ctx and rm_cmask. `timed` waits for each phase and adds the
    split (time/rollout, time/scoring, time/update, seconds) to the metrics. `plan` (optional):
    `context_plan` of the contexts."""
    if timed:  # earlier steps' work still queued would count as this rollout's
      jax.block_until_ready(state)
    clock = [time.perf_counter()]

    def lap(tree):
      if timed:
        jax.block_until_ready(tree)
        clock.append(time.perf_counter())
      return tree

    plan = batch.get("plan")
    r = lap(self.sample(state, self.ref_params, batch["ctx"], batch["cmask"], batch["rows"],
                        plan))
    if self.in_graph:
      scores = self.score(self.rm_params, r, batch["rm_ctx"], batch["rm_cmask"])
    else:  # another tokenizer: the responses as text, in the reward model's format
      ids, mask = sharding.to_host((r.response_ids, r.response_mask))
      texts = [self.policy.fmt.decode(row[m == 1]) for row, m in zip(ids, mask)]
      scores = sharding.replicate(self.scorer(batch["contexts"], texts), self.mesh)
    lap(scores)
    state, metrics = lap(self.finish(state, r, scores, plan))
    if timed:
      metrics = {**metrics, **{f"time/{k}": b - a for k, a, b in zip(
          ("rollout", "scoring", "update"), clock, clock[1:])}}
    return state, metrics


class ContextBatches:
  """The contexts an RL algorithm answers (PPO, GRPO): each global batch of the train split as
  a step reads it -- token ids placed on the mesh, row ids, the contexts as text (for scoring
  through text) and, when the reward model scores in the graph, its own ids of the same
  contexts (encoded once for the whole split)."""

  def __init__(self, policy, reward, train, batch_size: int, mesh, in_graph: bool):
    self.train, self.mesh, self.in_graph = train, mesh, in_graph
    self.batcher = make_batcher(policy.fmt, batch_size)
    self.num_batches = self.batcher.num_batches(len(train[1]))
    self._data = sharding.batch_sharding(mesh, 2)
    if in_graph:
      self._rm_fmt = reward.backbone.fmt
      self._rm_contexts = [e.ids for e in self._rm_fmt.encode_contexts(train[0].contexts)]
      self._rm_batcher = make_batcher(self._rm_fmt, batch_size)

  def host_batch(self, split, batch) -> dict:
    """ctx, cmask (on the mesh), rows (replicated), row_ids, contexts (text), real, tokens."""
    rows = np.maximum(batch.example_index_B, 0)
    ctx, cmask = sharding.from_host([batch.context_ids_BxC, batch.context_mask_BxC], self._data)
    return {"ctx": ctx, "cmask": cmask, "rows": sharding.replicate(rows, self.mesh),
            "row_ids": rows, "contexts": [split.contexts[i] for i in rows],
            "real": batch.example_index_B >= 0, "tokens": int(batch.context_mask_BxC.sum())}

  def train_batches(self, seed, epoch: int, start_batch: int):
    """(the host `Batch`, `host_batch`'s dict with rm_ctx/rm_cmask when in the graph) of each
    train batch of an epoch from `start_batch` on."""
    split, table = self.train
    for batch in self.batcher.batches(table, seed, epoch, start_batch):
      out = self.host_batch(split, batch)
      if self.in_graph:
        rows = out["row_ids"]
        rm = self._rm_batcher.make_batch([self._rm_contexts[i] for i in rows],
                                         [[self._rm_fmt.pad_id]] * len(rows), range(len(rows)))
        out["rm_ctx"], out["rm_cmask"] = sharding.from_host(
            [rm.context_ids_BxC, rm.context_mask_BxC], self._data)
      yield batch, out


class PPOTask(loop.Task):
  """Each step is one `Programs.iteration`; logged steps are timed (the time split)."""

  monitor, monitor_mode = "val_reward", "max"
  progress_keys = ("objective/scores", "objective/kl", "time/rollout", "time/scoring",
                   "time/update")

  def __init__(self, cfg, policy, reward, train, val, mesh, shardings, tx):
    self.cfg, self.policy, self.reward, self.mesh = cfg, policy, reward, mesh
    self.train, self.val = train, val
    self.ppo = cfg.ppo(resolve({}, {}, policy.model.cfg))
    self.programs = Programs(cfg, self.ppo, policy, reward, mesh, shardings, tx)
    self.scorer = self.programs.scorer
    self.contexts = ContextBatches(policy, reward, train, cfg.batch_size, mesh,
                                   self.programs.in_graph)
    self.steps_per_epoch = self.contexts.num_batches
    if cfg.recipe == "original":  # the original's test-time loader takes the lowest val loss
      self.monitor, self.monitor_mode = "val_loss", "min"
      self._val_loss = jax.jit(functools.partial(original_val_loss, model=policy.model,
                                                 ppo=self.ppo))

  # -- batches -------------------------------------------------------------------------------

  def batches(self, epoch, start_batch):
    for b, (batch, out) in enumerate(self.contexts.train_batches(self.cfg.seed, epoch,
                                                                 start_batch), start=start_batch):
      out["global_step"] = epoch * self.steps_per_epoch + b + 1
      out["plan"] = context_plan(self.policy.model, batch.context_mask_BxC, self.mesh, self.ppo)
      yield out

  def step(self, state, batch):
    return self.programs.iteration(state, batch,
                                   timed=batch["global_step"] % self.cfg.log_interval == 0)

  def real_tokens(self, batch) -> int:
    return batch["tokens"]

  def episodes(self, batch) -> int:
    return int(batch["real"].sum())

  # -- validation and saving -----------------------------------------------------------------

  def validate(self, state):
    split, table = self.val
    greedy = dataclasses.replace(self.ppo.generation, sample=False, temperature=1.0)
    original = self.monitor == "val_loss"
    # The original's val_dataloader keeps the dataset's order, and its loss whitens advantages
    # per batch: the same batches matter there; elsewhere length grouping saves padding.
    batcher = make_batcher(self.policy.fmt, self.cfg.batch_size, group_by_length=not original)
    rewards, losses = [], []
    for batch in batcher.batches(table):
      b = self.contexts.host_batch(split, batch)
      out, real, scores = greedy_scores(self.policy, state.params["policy"], b, greedy,
                                        self.scorer)
      rewards.extend(scores)
      if original:
        padded = np.zeros(len(b["real"]), np.float32)
        padded[real] = scores
        loss = self._val_loss(state.params, self.programs.ref_params, b["ctx"], b["cmask"],
                              out.tokens_BxN, out.mask_BxN * b["real"][:, None],
                              sharding.replicate(padded, self.mesh), state.kl_coef)
        losses.append((float(loss), len(real)))
    metrics = {"val_reward": float(np.mean(rewards)), "val_reward_std": float(np.std(rewards))}
    if losses:  # Lightning's epoch value: the batch losses weighted by their contexts
      metrics["val_loss"] = sum(v * n for v, n in losses) / sum(n for _, n in losses)
    return metrics

  def save_model(self, state, path, metadata):
    model_dir.save(dataclasses.replace(self.policy, params=state.params["policy"]), path,
                   metadata=metadata)


def greedy_scores(policy, params, b: dict, greedy: GenerationConfig, scorer):
  """Greedy responses to a host batch's contexts (`b`: ctx, cmask, rows, contexts, real) and
  the reward model's scores of its real rows: (generation output, real row indices, scores)."""
  out = generate_ids(policy.model, params, b["ctx"], b["cmask"], greedy, jax.random.PRNGKey(0),
                     b["rows"])
  ids, mask = sharding.to_host((out.tokens_BxN, out.mask_BxN))
  real = np.flatnonzero(b["real"])
  scores = scorer([b["contexts"][row] for row in real],
                  [policy.fmt.decode(ids[row][mask[row] == 1]) for row in real])
  return out, real, scores


def original_val_loss(params, ref_params, ctx, cmask, tokens, mask, scores, kl_coef, *, model,
                      ppo: S.PPOConfig):
  """The original's validation loss of one batch (`RLHFSupervisor.validation_step`): its PPO
  loss on greedy responses with their scores, in eval mode (no dropout anywhere)."""
  tgt, tgt_mask = R.teacher_forced(model, tokens, mask, ppo.generation.decoder_start_token_id)
  r = S.from_responses(model, params, ref_params, ctx, cmask, tgt, tgt_mask, mask, tokens,
                       cfg=ppo)
  eval_mode = dataclasses.replace(ppo, policy_dropout=False, value_head_dropout=0.0)
  loss, _ = S.original_minibatch_loss(params, r.replace(scores=scores), model, eval_mode,
                                      kl_coef, jax.random.PRNGKey(0))
  return loss


def state_layout(model, tx, mesh, shared_critic: bool) -> tuple[PPOState, PPOState]:
  """(the abstract PPO state, its shardings) of a policy architecture: policy, critic
  (a backbone of the policy's architecture unless shared) and AdamW's state, placed by the
  logical rules."""
  boxed_model = model.abstract_params()
  head_shapes = heads.abstract(R.zero_value_head(model.hidden_size))
  boxed = {"policy": boxed_model, "critic": {"head": head_shapes} if shared_critic
           else {"backbone": boxed_model, "head": head_shapes}}
  abstract = abstract_state(boxed, tx)
  base = state_shardings(abstract, mesh)
  scalar = jax.ShapeDtypeStruct((), jnp.float32)
  shapes = PPOState(abstract.step, nn.unbox(abstract.params), nn.unbox(abstract.opt_state),
                    abstract.rng, scalar)
  return shapes, PPOState(base.step, base.params, base.opt_state, base.rng,
                          sharding.replicated(mesh))


def initial_state(cfg: PPORunConfig, policy, reward, tx, mesh) -> tuple[PPOState, PPOState]:
  """(the sharded start state, its shardings): the policy, a critic (its own backbone -- the
  reward model's when it has the policy's architecture, TRL's practice -- or the policy's
  with `--critic shared`) with a zero value head, AdamW's state, the PRNG and the KL
  coefficient."""
  critic_backbone = policy.params
  if (reward.backbone.model.cfg.replace(dropout_rate=0.0)
      == policy.model.cfg.replace(dropout_rate=0.0)) and cfg.critic == "separate":
    critic_backbone = reward.backbone.params
  head = R.zero_value_head(policy.model.hidden_size)
  if cfg.value_head_init == "torch":  # torch.nn.Linear's: U(+-1/sqrt(fan_in)), the original's
    bound = 1.0 / np.sqrt(policy.model.hidden_size)
    k_kernel, k_bias = jax.random.split(jax.random.PRNGKey(cfg.seed + 1))
    head = {"kernel": jax.random.uniform(k_kernel, head["kernel"].shape, jnp.float32, -bound,
                                         bound),
            "bias": jax.random.uniform(k_bias, (), jnp.float32, -bound, bound)}
  shared = cfg.critic == "shared"
  params = {"policy": policy.params,
            "critic": {"head": head} if shared else {"backbone": critic_backbone, "head": head}}
  shardings = state_layout(policy.model, tx, mesh, shared)[1]
  params = sharding.shard_tree(params, shardings.params)
  opt_state = jax.jit(tx.init, out_shardings=shardings.opt_state)(params)
  state = PPOState(jax.device_put(jnp.int32(0), shardings.step), params, opt_state,
                   jax.device_put(jax.random.PRNGKey(cfg.seed), shardings.rng),
                   jax.device_put(jnp.float32(cfg.kl_penalty), shardings.kl_coef))
  return state, shardings


def dialogue_split(cfg, name, limit, fmt):
  """(the split `name` of `cfg.dataset_dir`, its first `limit` rows, tokenized in `fmt`)."""
  split = load_dialogue_split(split_dir(cfg.dataset_dir, name), cfg.data_erasure_level)
  if limit is not None:
    split = split.select(range(min(limit, len(split))))
  return split, tokenize_split(split, fmt)


def rl_inputs(cfg, loaded):
  """What an RL algorithm (PPO, GRPO) reads besides its policy: (the reward model, the train
  and validation splits as `dialogue_split` gives them, batches per epoch)."""
  reward = reward_model.load(cfg.reward_model_dir, trust_pickle=cfg.trust_pickle)
  train = dialogue_split(cfg, "train", cfg.max_train_examples, loaded.fmt)
  val = dialogue_split(cfg, "val", cfg.max_val_examples, loaded.fmt)
  return reward, train, val, make_batcher(loaded.fmt, cfg.batch_size).num_batches(len(train[1]))


class PPO(core.Algorithm):
  """PPO for `core.run`: rollouts from the policy, scored by the reward model, clipped updates
  of the policy and its critic."""

  def prepare(self, cfg: PPORunConfig, mesh) -> None:
    core.check_batch_shards(cfg.batch_size, mesh)

  def build(self, cfg: PPORunConfig, loaded, prepared, mesh) -> core.Setup:
    reward, train, val, steps = rl_inputs(cfg, loaded)
    tx, _ = make_optimizer(cfg.optimizer(), steps * cfg.ppo_epochs * cfg.num_minibatches,
                           cfg.max_epochs)
    state, shardings = initial_state(cfg, loaded, reward, tx, mesh)
    task = PPOTask(cfg, loaded, reward, train, val, mesh, shardings, tx)
    logging.info("reward scoring %s", "in the graph (shared tokenizer)" if task.programs.in_graph
                 else "through text (different tokenizers)")
    return core.Setup(task, state)


def train_rlhf_pipeline(cfg: PPORunConfig) -> dict:
  """PPO-trains the policy; returns the loop's summary."""
  return core.run(cfg, PPO())
