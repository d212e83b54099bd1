"""Reward-model training (`launch/train_reward_model.py`) on the trainer core.

The original trains one context per step (all its candidate responses, a Python loop over its
rated pairs) and validates on its training data. Here a step takes `batch_size` contexts: their
responses padded to one static shape [B, R, T], their ratings as index pairs [B, P] with a mask,
the pair loss computed as arrays (`training.reward`); the batch is split over the mesh's batch
axes like SFT's, parameters by the logical rules. `--val_fraction 0` reproduces the original's
validation on the training contexts; above 0, that share of contexts (chosen by `--seed`) is
held out. The learning rate halves every epoch (the original's StepLR). Every saved model stores
the mean eval-mode reward over the validation responses as `mean_offset`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import preflight, sharding
from empathy_jax.data.dialogue_dataset import RewardSplit, load_reward_split, split_dir
from empathy_jax.data.pipeline import DEFAULT_BUCKETS, bucket_length
from empathy_jax.errors import DatasetError, Problem
from empathy_jax.models import reward_model
from empathy_jax.settings import setting
from empathy_jax.training import core, loop, reward
from empathy_jax.training.run_config import TrainRunConfig
from empathy_jax.training.state import TrainState, jit_update

LOSSES = ("original", "bradley_terry")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RewardConfig(TrainRunConfig):
  """Everything `train_reward_model` needs; the original's flags keep their names/defaults."""

  dataset_dir: str = setting(help="Reward dataset folder (train/contexts.json, "
                             "responses.json, ratings.json).")
  max_epochs: int = setting(1, "Training epochs.")
  initial_lr: float = setting(1e-5, "AdamW learning rate, halved every epoch.")
  batch_size: int = setting(1, "Contexts per step, each with all its responses and ratings "
                            "(the original: 1).")
  val_fraction: float = setting(0.0, "Share of contexts held out for validation, chosen by "
                                "--seed; 0 validates on the training contexts as the original.")
  dropout: float = setting(0.6, "Dropout before the reward head (the original's 0.6).")
  loss: str = setting("original", "original: the graded pairwise loss (ties: squared "
                      "difference; else -sqrt|factor| log sigmoid(margin)); bradley_terry: "
                      "-log sigmoid(r_better - r_worse - margin) over non-tie pairs, as TRL.",
                      LOSSES)
  margin: float = setting(0.0, "Bradley-Terry margin (with --loss=bradley_terry).")
  center_rewards_coefficient: float = setting(0.0, "Reward centring coefficient, TRL's (with "
                                              "--loss=bradley_terry; TRL suggests 0.01).")
  max_contexts: int | None = setting(None, "Use only the first N contexts.")
  log_interval: int = 10
  checkpoint_interval: int = 500
  num_val_samples: int = setting(2, "Validation contexts whose rewards are logged per epoch.")

  MODEL_ROLE = "a dialogue model to start from"

  def check(self) -> None:
    if self.loss == "original" and (self.margin or self.center_rewards_coefficient):
      raise ValueError("--margin and --center_rewards_coefficient belong to "
                       "--loss=bradley_terry")
    check_reward_data_fields(self)

  def check_inputs(self) -> None:
    check_reward_data_inputs(self)

  def schedule(self) -> str:
    return "halving"


def check_reward_data_fields(cfg) -> None:
  """The fields of a config that trains on the reward dataset (reward model, DPO)."""
  if cfg.max_contexts is not None and cfg.max_contexts < 2:
    raise ValueError(f"--max_contexts must be >= 2, got {cfg.max_contexts}")


def load_train_contexts(cfg) -> RewardSplit:
  """The reward dataset's training split, its first `--max_contexts` contexts."""
  split = load_reward_split(split_dir(cfg.dataset_dir, "train"))
  n = cfg.max_contexts
  if n is None:
    return split
  return RewardSplit(split.contexts[:n], split.responses[:n], split.ratings[:n], split.path)


def check_reward_data_inputs(cfg) -> None:
  """The reward dataset, the starting model and the output folder, before any heavy work."""
  load_reward_split(split_dir(cfg.dataset_dir, "train"))  # DatasetError lists every fault
  preflight.check_model_source(cfg.model or cfg.pretrained_model_dir)
  preflight.check_writable(cfg.output_dir)


# -- data --------------------------------------------------------------------------------------


def split_contexts(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, validation) context indices: with `val_fraction` 0 both are every context (the
  original validates on its training data); otherwise a seeded share is held out."""
  every = np.arange(n)
  if val_fraction == 0.0:
    return every, every
  held = max(1, int(round(n * val_fraction)))
  if held >= n:
    raise ValueError(f"--val_fraction {val_fraction} leaves no training context of {n}")
  order = np.random.default_rng([seed, 7]).permutation(n)
  return np.sort(order[held:]), np.sort(order[:held])


class RewardData:
  """A tokenized reward split and its static-shape batches.

  Contexts are encoded in the backbone's format (GODEL's default instruction, ...), responses as
  its targets (`<PAD> text` for GODEL). Every batch has R = the most responses of any context
  and P = the most rated pairs; contexts and responses pad to their batch's length buckets, and
  batches are cut from length-sorted windows (then shuffled), so that little is padding: one
  train program per (context, response) bucket pair.
  """

  group_window = 50  # batches per length-sorted window (as SFT's `Batcher`)

  def __init__(self, split: RewardSplit, fmt, batch_rows: int):
    self.split, self.fmt, self.rows = split, fmt, batch_rows
    n = len(split.contexts)
    flat = fmt.encode_targets([r for rs in split.responses for r in rs])
    groups = list(flat_groups(flat, split.responses))
    self.responses = [[e.ids for e in g] for g in groups]
    longest = [max(g, key=lambda e: len(e.ids)) for g in groups]
    # Decoder-only: each context leaves room for its longest response within max_length.
    self.contexts = [c.ids for c in fmt.fit_contexts(fmt.encode_contexts(split.contexts),
                                                     longest)]
    truncated = sum(e.truncated for e in flat)
    if truncated:
      logging.warning("%s: %d responses cut at max_length %d", split.path, truncated,
                      fmt.max_length)
    self.num_responses = max(len(rs) for rs in split.responses)
    self.num_pairs = max(1, max(len(r) for r in split.ratings))
    self.lengths = np.asarray([len(c) + max(len(r) for r in rs)
                               for c, rs in zip(self.contexts, self.responses)])
    self.n = n

  def num_batches(self, indices) -> int:
    return -(-len(indices) // self.rows)

  def batch_indices(self, indices: np.ndarray, seed: int | None, epoch: int = 0):
    """The context indices of each batch of an epoch: a seeded permutation sorted by length
    within windows of `group_window` batches, the batches then shuffled (`seed=None`: the
    whole set sorted, for evaluation)."""
    indices = np.asarray(indices)
    if seed is None:
      order = indices[np.argsort(-self.lengths[indices], kind="stable")]
      return [order[i:i + self.rows] for i in range(0, len(order), self.rows)]
    order = np.random.default_rng([seed, epoch]).permutation(indices)
    window = self.rows * self.group_window
    order = np.concatenate([w[np.argsort(-self.lengths[w], kind="stable")]
                            for w in np.array_split(order, range(window, len(order), window))])
    batches = [order[i:i + self.rows] for i in range(0, len(order), self.rows)]
    perm = np.random.default_rng([seed, epoch, 1]).permutation(len(batches))
    return [batches[i] for i in perm]

  def make_batch(self, idx) -> dict[str, np.ndarray]:
    b, r, p = self.rows, self.num_responses, self.num_pairs
    contexts = [self.contexts[i] for i in idx]
    c = bucket_length(max(len(x) for x in contexts), DEFAULT_BUCKETS, self.fmt.max_length)
    t = bucket_length(max(len(x) for i in idx for x in self.responses[i]), DEFAULT_BUCKETS,
                      self.fmt.max_length)
    pad = self.fmt.pad_id
    out = {"context_ids_BxC": np.full((b, c), pad, np.int32),
           "context_mask_BxC": np.zeros((b, c), np.int32),
           "response_ids_BxRxT": np.full((b, r, t), pad, np.int32),
           "response_mask_BxRxT": np.zeros((b, r, t), np.int32),
           "pair_a_BxP": np.zeros((b, p), np.int32), "pair_b_BxP": np.zeros((b, p), np.int32),
           "factor_BxP": np.zeros((b, p), np.float32), "pair_mask_BxP": np.zeros((b, p), np.int32),
           "context_index_B": np.full((b,), -1, np.int32)}
    left = not self.fmt.is_encoder_decoder
    for row, i in enumerate(idx):
      ctx = self.contexts[i][-c:]
      cols = slice(c - len(ctx), c) if left else slice(0, len(ctx))
      out["context_ids_BxC"][row, cols] = ctx
      out["context_mask_BxC"][row, cols] = 1
      for j, resp in enumerate(self.responses[i]):
        resp = resp[:t]
        out["response_ids_BxRxT"][row, j, :len(resp)] = resp
        out["response_mask_BxRxT"][row, j, :len(resp)] = 1
      for k, (a, bb, f) in enumerate(self.split.ratings[i]):
        out["pair_a_BxP"][row, k], out["pair_b_BxP"][row, k] = a, bb
        out["factor_BxP"][row, k], out["pair_mask_BxP"][row, k] = f, 1
      out["context_index_B"][row] = i
    return out


def flat_groups(flat, groups):
  start = 0
  for g in groups:
    yield flat[start:start + len(g)]
    start += len(g)


# -- steps ---------------------------------------------------------------------------------------


def _rewards(model, params, batch, *, exclude_id, dropout, deterministic, rng):
  """[B, R] raw rewards of a batch's responses."""
  ids, mask = batch["response_ids_BxRxT"], batch["response_mask_BxRxT"]
  b, r, t = ids.shape
  values = reward_model.response_rewards(
      model, params, batch["context_ids_BxC"], batch["context_mask_BxC"],
      ids.reshape(b * r, t), mask.reshape(b * r, t), exclude_id=exclude_id, dropout=dropout,
      deterministic=deterministic, rng=rng)
  return values.reshape(b, r)


def _batch_stats(terms, rewards_BxR, batch) -> dict:
  """Sums the host turns into ratios (accuracy only over decided pairs, tie MSE only over
  ties, reward mean/std over real responses)."""
  real = (batch["response_mask_BxRxT"].sum(-1) > 0).astype(jnp.float32)
  return {"correct": terms["correct"].sum(), "decided": terms["decided"].sum(),
          "tie_sq_sum": terms["tie_sq_sum"].sum(), "ties": terms["ties"].sum(),
          "reward_sum": jnp.sum(rewards_BxR * real),
          "reward_sq_sum": jnp.sum(jnp.square(rewards_BxR) * real),
          "responses": real.sum()}


def train_step(state: TrainState, batch: dict, *, model, tx, exclude_id: int | None,
               dropout: float,
               loss: str, margin: float, center: float):
  rng = jax.random.fold_in(state.rng, state.step)

  def f(params):
    rewards = _rewards(model, params, batch, exclude_id=exclude_id, dropout=dropout,
                       deterministic=False, rng=rng)
    terms = reward.pairwise_terms(rewards, batch["pair_a_BxP"], batch["pair_b_BxP"],
                                  batch["factor_BxP"], batch["pair_mask_BxP"], loss, margin,
                                  center)
    return reward.batch_loss(terms), (terms, rewards)

  (value, (terms, rewards)), grads = jax.value_and_grad(f, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(jnp.add, state.params, updates)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, {"loss": value, **_batch_stats(terms, rewards, batch)}


@dataclasses.dataclass(frozen=True)
class Programs:
  """The reward model's jitted programs. step: (state, batch) -> (state, metrics), the state
  donated. evaluate: (params, batch) -> (per-context loss terms, [B, R] rewards)."""

  step: Callable
  evaluate: Callable


def programs(model, tx, shardings: TrainState, mesh, batch_shardings: dict | None = None, *,
             exclude_id: int | None, dropout: float, loss: str = "original",
             margin: float = 0.0, center: float = 0.0) -> Programs:
  """The programs as the trainer, plan.py and the benchmarks all compile them
  (`batch_shardings`: None takes the batch's own placement)."""
  losses = dict(loss=loss, margin=margin, center=center)
  batch = None if batch_shardings is None else (batch_shardings,)
  return Programs(
      step=jit_update(functools.partial(train_step, model=model, tx=tx, exclude_id=exclude_id,
                                        dropout=dropout, **losses),
                      shardings, mesh, in_shardings=batch),
      evaluate=jax.jit(functools.partial(eval_step, model=model, exclude_id=exclude_id,
                                         **losses),
                       in_shardings=None if batch is None else (shardings.params, *batch)))


def eval_step(params, batch: dict, *, model, exclude_id: int | None, loss: str, margin: float,
              center: float):
  """Per context: (its loss, whether it has pairs, the pair counts) and its [R] rewards."""
  rewards = _rewards(model, params, batch, exclude_id=exclude_id, dropout=0.0, deterministic=True,
                     rng=None)
  terms = reward.pairwise_terms(rewards, batch["pair_a_BxP"], batch["pair_b_BxP"],
                                batch["factor_BxP"], batch["pair_mask_BxP"], loss, margin,
                                center)
  return terms, rewards


def summarize(terms: dict[str, np.ndarray], rewards: list[np.ndarray], prefix: str) -> dict:
  """Validation metrics from per-context terms and the real responses' rewards."""
  has = terms["has_pairs"] > 0
  values = np.concatenate(rewards) if rewards else np.zeros(0)
  decided, ties = terms["decided"].sum(), terms["ties"].sum()
  out = {f"{prefix}_loss": float(terms["loss"][has].mean()) if has.any() else float("nan"),
         f"{prefix}_reward_mean": float(values.mean()) if len(values) else float("nan"),
         f"{prefix}_reward_std": float(values.std()) if len(values) else float("nan")}
  if decided > 0:
    out[f"{prefix}_accuracy"] = float(terms["correct"].sum() / decided)
  if ties > 0:
    out[f"{prefix}_tie_mse"] = float(terms["tie_sq_sum"].sum() / ties)
  return out


# -- the task ----------------------------------------------------------------------------------


class RewardTask(loop.JittedStepTask):
  """Reward training on the trainer core; `best/` by validation loss."""

  monitor, monitor_mode = "val_loss", "min"

  def __init__(self, cfg: RewardConfig, start: reward_model.RewardModel, data: RewardData,
               train_idx, val_idx, mesh, shardings: TrainState, tx, lr_fn):
    self.cfg, self.start, self.data, self.mesh = cfg, start, data, mesh
    self.train_idx, self.val_idx = train_idx, val_idx
    self.lr_fn = jax.jit(lr_fn)
    self.steps_per_epoch = data.num_batches(train_idx)
    self._batch_shardings = {k: sharding.batch_sharding(mesh, v.ndim)
                             for k, v in data.make_batch(train_idx[:1]).items()}
    jitted = programs(start.backbone.model, tx, shardings, mesh, self._batch_shardings,
                      exclude_id=start.pool_exclude_id, dropout=cfg.dropout, loss=cfg.loss,
                      margin=cfg.margin, center=cfg.center_rewards_coefficient)
    self._step, self._eval = jitted.step, jitted.evaluate
    self._validated: tuple[int, dict, list] | None = None  # (step, metrics, per-context rewards)

  def _global(self, batch):
    return sharding.from_host(batch, self._batch_shardings)

  def batches(self, epoch, start_batch):
    for idx in self.data.batch_indices(self.train_idx, self.cfg.seed, epoch)[start_batch:]:
      batch = self.data.make_batch(idx)
      tokens = int(batch["context_mask_BxC"].sum() + batch["response_mask_BxRxT"].sum())
      yield self._global(batch), tokens

  def train_log_values(self, m):
    out = {"loss": m["loss"]}
    if m["decided"] > 0:
      out["accuracy"] = m["correct"] / m["decided"]
    if m["ties"] > 0:
      out["tie_mse"] = m["tie_sq_sum"] / m["ties"]
    if m["responses"] > 0:
      mean = m["reward_sum"] / m["responses"]
      out["reward_mean"] = mean
      out["reward_std"] = float(np.sqrt(max(m["reward_sq_sum"] / m["responses"] - mean ** 2,
                                            0.0)))
    return out

  def _evaluate(self, state):
    """Eval-mode pass over the validation contexts (cached per step)."""
    step = int(sharding.to_host(state.step))
    if self._validated is not None and self._validated[0] == step:
      return self._validated
    terms, per_context = {}, {}
    for idx in self.data.batch_indices(self.val_idx, None):
      batch = self.data.make_batch(idx)
      t, rewards = sharding.to_host(self._eval(state.params, self._global(batch)))
      rows = batch["context_index_B"] >= 0
      for k, v in t.items():
        terms.setdefault(k, []).append(v[rows])
      for row in np.flatnonzero(rows):
        ctx = int(batch["context_index_B"][row])
        per_context[ctx] = rewards[row, :len(self.data.responses[ctx])]
    terms = {k: np.concatenate(v) for k, v in terms.items()}
    metrics = summarize(terms, list(per_context.values()), "val")
    self._validated = (step, metrics, per_context)
    return self._validated

  def validate(self, state):
    return dict(self._evaluate(state)[1])

  def samples(self, state):
    _, _, per_context = self._evaluate(state)
    out = []
    for ctx in list(per_context)[:self.cfg.num_val_samples]:
      rewards = per_context[ctx]
      out.append({"context": self.data.split.contexts[ctx][-1],
                  "responses": [{"text": text, "reward": float(r)} for text, r in
                                zip(self.data.split.responses[ctx], rewards)],
                  "ratings": self.data.split.ratings[ctx]})
    return out

  def save_model(self, state, path, metadata):
    offset = self._evaluate(state)[1]["val_reward_mean"]
    reward_model.save(self.start.with_params(state.params, offset), path, metadata=metadata)


class RewardModelTraining(core.Algorithm):
  """Reward-model training for `core.run`: rated pairs of the reward split, the pair loss."""

  def prepare(self, cfg: RewardConfig, mesh) -> RewardSplit:
    split = load_train_contexts(cfg)
    if len(split.contexts) < 1:
      raise DatasetError([Problem(split.path, None, "no contexts to train on")])
    return split

  def build(self, cfg: RewardConfig, loaded, prepared: RewardSplit, mesh) -> core.Setup:
    start = reward_model.new_reward_model(loaded, cfg.seed)
    shards = sharding.batch_shards(mesh)
    rows = -(-cfg.batch_size // shards) * shards  # filler contexts carry no pairs
    if rows != cfg.batch_size:
      logging.warning("--batch_size %d padded to %d rows (a multiple of the %d batch shards); "
                      "the filler rows carry no pairs", cfg.batch_size, rows, shards)
    data = RewardData(prepared, loaded.fmt, rows)
    train_idx, val_idx = split_contexts(data.n, cfg.val_fraction, cfg.seed)
    state, shardings, tx, lr_fn = core.adamw_state(cfg, start.params, start.abstract_params(),
                                                   data.num_batches(train_idx), mesh, cfg.seed)
    task = RewardTask(cfg, start, data, train_idx, val_idx, mesh, shardings, tx, lr_fn)

    def finish(state, summary):
      offset = task._evaluate(state)[1]["val_reward_mean"]  # pylint: disable=protected-access
      return {**summary, "reward_model": start.with_params(state.params, offset)}
    return core.Setup(task, state, {"train_contexts": len(train_idx),
                                    "val_contexts": len(val_idx)}, finish)


def train_reward_model(cfg: RewardConfig) -> dict:
  """Trains a reward model; returns a summary (run folder, best validation loss, per-epoch
  history, the final `RewardModel`)."""
  return core.run(cfg, RewardModelTraining())
