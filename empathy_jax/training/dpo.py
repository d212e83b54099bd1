"""Direct preference optimisation (`launch/train_dpo.py`) from the reward dataset's pairwise
ratings, on the trainer core: no reward model, no rollouts.

Each rated pair `[a, b, factor]` of a context is a preference: factor < 0 prefers response a,
factor > 0 prefers b; a tie (factor 0) is left out, or with `--ties zero_margin` pulls the two
implicit rewards together (the squared difference, as the original's reward loss treats ties).
`--pair_weight sqrt_factor` weights a pair by sqrt|factor| as the original's reward loss does
(ties then weigh 1).

The reference model is the starting policy. Its sequence log-probs are computed once, before
training, in one jitted pass over every pair, and travel with the batches: a step holds only the
policy. The policy runs without dropout (TRL's `disable_dropout`), so at step 0 its log-probs
equal the reference's. Metrics carry TRL's names (`rewards/chosen`, `rewards/margins`, ...).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import sharding
from empathy_jax.data.dialogue_dataset import RewardSplit
from empathy_jax.data.pipeline import DEFAULT_BUCKETS, bucket_length
from empathy_jax.errors import DatasetError, Problem
from empathy_jax.models import model_dir
from empathy_jax.settings import setting
from empathy_jax.training import core, loop
from empathy_jax.training.reward_trainer import (RewardData, check_reward_data_fields,
                                                 check_reward_data_inputs, load_train_contexts,
                                                 split_contexts)
from empathy_jax.training.run_config import TrainRunConfig
from empathy_jax.training.state import TrainState, jit_update

LOSS_TYPES = ("sigmoid", "ipo")


def dpo_loss(chosen_logps_B, rejected_logps_B, ref_chosen_logps_B, ref_rejected_logps_B, beta,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0):
  """Per-pair preference loss [B] of the policy's and the reference's sequence log-probs.

  h = (chosen - rejected) - (ref_chosen - ref_rejected);
  sigmoid (DPO, with cDPO's `label_smoothing` eps): -(1 - eps) log s(beta h) - eps log s(-beta h);
  ipo: (h - 1 / (2 beta))^2 (IPO expects per-token mean log-probs, `sequence_logps`).
  """
  h = (chosen_logps_B - rejected_logps_B) - (ref_chosen_logps_B - ref_rejected_logps_B)
  if loss_type == "sigmoid":
    return (-(1.0 - label_smoothing) * jax.nn.log_sigmoid(beta * h)
            - label_smoothing * jax.nn.log_sigmoid(-beta * h))
  if loss_type == "ipo":
    return jnp.square(h - 1.0 / (2.0 * beta))
  raise ValueError(f"unknown DPO loss {loss_type!r}: one of {', '.join(LOSS_TYPES)}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class DPOConfig(TrainRunConfig):
  """Everything `train_dpo` needs."""

  dataset_dir: str = setting(help="Reward dataset folder (train/contexts.json, responses.json, "
                             "ratings.json): its rated pairs are the preferences.")
  max_epochs: int = setting(3, "Training epochs.")
  batch_size: int = setting(8, "Preference pairs per step.")
  initial_lr: float = setting(5e-6, "AdamW learning rate, decayed linearly to 0 per step.")
  weight_decay: float = setting(0.0, "AdamW weight decay.")
  clip_norm: float = setting(1.0, "Global gradient-norm clipping (0: off).")
  beta: float = setting(0.1, "Strength of the KL constraint to the reference (DPO's beta).")
  loss_type: str = setting("sigmoid", "sigmoid: DPO; ipo: IPO (per-token mean log-probs).",
                           LOSS_TYPES)
  label_smoothing: float = setting(0.0, "cDPO: the share of preferences assumed flipped "
                                   "(with --loss_type=sigmoid).")
  ties: str = setting("exclude", "Tied pairs (factor 0): exclude them, or zero_margin: the "
                      "squared difference of their implicit rewards.", ("exclude", "zero_margin"))
  pair_weight: str = setting("none", "Weight of a pair: none, or sqrt_factor (sqrt|factor|, "
                             "as the original's reward loss).", ("none", "sqrt_factor"))
  val_fraction: float = setting(0.1, "Share of contexts (and so of their pairs) held out, "
                                "chosen by --seed; 0 validates on the training pairs.")
  max_contexts: int | None = setting(None, "Use only the first N contexts.")
  log_interval: int = 10
  checkpoint_interval: int = 500

  MODEL_ROLE = "the policy to start from (and the reference)"

  def check(self) -> None:
    if self.beta <= 0:
      raise ValueError(f"--beta must be positive, got {self.beta}")
    if self.label_smoothing >= 0.5 or (self.label_smoothing and self.loss_type != "sigmoid"):
      raise ValueError("--label_smoothing must be below 0.5, with --loss_type=sigmoid")
    check_reward_data_fields(self)

  def check_inputs(self) -> None:
    check_reward_data_inputs(self)


# -- data ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pairs:
  """Preference pairs as parallel arrays: the context, the chosen and the rejected response
  (indices into `RewardData`'s tokenized lists), the pair's weight and whether it is a tie."""

  context: np.ndarray
  chosen: np.ndarray
  rejected: np.ndarray
  weight: np.ndarray
  tie: np.ndarray

  def __len__(self) -> int:
    return len(self.context)

  def take(self, idx) -> "Pairs":
    return Pairs(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))


def preference_pairs(ratings, contexts, ties: str, pair_weight: str) -> Pairs:
  """The pairs of the given contexts, in dataset order (ties kept only with zero_margin)."""
  rows = []
  for i in contexts:
    for a, b, factor in ratings[i]:
      if factor == 0 and ties == "exclude":
        continue
      chosen, rejected = (a, b) if factor <= 0 else (b, a)
      weight = np.sqrt(abs(factor)) if pair_weight == "sqrt_factor" and factor else 1.0
      rows.append((i, chosen, rejected, weight, factor == 0))
  if not rows:
    return Pairs(*(np.zeros(0, t) for t in (np.int32, np.int32, np.int32, np.float32, bool)))
  c, ch, rj, w, t = zip(*rows)
  return Pairs(np.asarray(c, np.int32), np.asarray(ch, np.int32), np.asarray(rj, np.int32),
               np.asarray(w, np.float32), np.asarray(t, bool))


BATCH_KEYS = ("context_ids_BxC", "context_mask_BxC", "chosen_ids_BxT", "chosen_mask_BxT",
              "rejected_ids_BxT", "rejected_mask_BxT", "weight_B", "tie_B", "real_B",
              "ref_chosen_B", "ref_rejected_B")


class PairBatcher:
  """Static-shape batches of pairs: contexts and responses padded to length buckets, pairs
  grouped by length within windows, then the batches shuffled (as SFT's `Batcher`)."""

  group_window = 50

  def __init__(self, data: RewardData, rows: int):
    self.data, self.rows = data, rows

  def num_batches(self, pairs: Pairs) -> int:
    return -(-len(pairs) // self.rows)

  def _length(self, pairs: Pairs) -> np.ndarray:
    d = self.data
    return np.asarray([len(d.contexts[c]) + max(len(d.responses[c][a]), len(d.responses[c][b]))
                       for c, a, b in zip(pairs.context, pairs.chosen, pairs.rejected)])

  def batch_indices(self, pairs: Pairs, seed: int | None, epoch: int = 0) -> list[np.ndarray]:
    lengths = self._length(pairs)
    if seed is None:
      order = np.argsort(-lengths, kind="stable")
      return [order[i:i + self.rows] for i in range(0, len(order), self.rows)]
    order = np.random.default_rng([seed, epoch]).permutation(len(pairs))
    window = self.rows * self.group_window
    order = np.concatenate([w[np.argsort(-lengths[w], kind="stable")]
                            for w in np.array_split(order, range(window, len(order), window))])
    batches = [order[i:i + self.rows] for i in range(0, len(order), self.rows)]
    perm = np.random.default_rng([seed, epoch, 1]).permutation(len(batches))
    return [batches[i] for i in perm]

  def make_batch(self, pairs: Pairs, ref: np.ndarray | None) -> dict[str, np.ndarray]:
    """`ref`: [len(pairs), 2] reference log-probs (chosen, rejected), or None (zeros)."""
    d, b = self.data, self.rows
    contexts = [d.contexts[i] for i in pairs.context]
    chosen = [d.responses[c][r] for c, r in zip(pairs.context, pairs.chosen)]
    rejected = [d.responses[c][r] for c, r in zip(pairs.context, pairs.rejected)]
    c_len = bucket_length(max(map(len, contexts)), DEFAULT_BUCKETS, d.fmt.max_length)
    t_len = bucket_length(max(map(len, chosen + rejected)), DEFAULT_BUCKETS, d.fmt.max_length)
    left = not d.fmt.is_encoder_decoder
    out = {"context_ids_BxC": _pad(contexts, b, c_len, d.fmt.pad_id, left),
           "chosen_ids_BxT": _pad(chosen, b, t_len, d.fmt.pad_id, False),
           "rejected_ids_BxT": _pad(rejected, b, t_len, d.fmt.pad_id, False)}
    out["context_mask_BxC"] = _pad(contexts, b, c_len, 0, left, mask=True)
    out["chosen_mask_BxT"] = _pad(chosen, b, t_len, 0, False, mask=True)
    out["rejected_mask_BxT"] = _pad(rejected, b, t_len, 0, False, mask=True)
    n = len(pairs)
    fill = lambda x, dtype: np.concatenate([np.asarray(x, dtype), np.zeros(b - n, dtype)])
    out["weight_B"] = fill(pairs.weight, np.float32)
    out["tie_B"] = fill(pairs.tie, np.float32)
    out["real_B"] = fill(np.ones(n), np.float32)
    ref = np.zeros((n, 2), np.float32) if ref is None else ref
    out["ref_chosen_B"], out["ref_rejected_B"] = fill(ref[:, 0], np.float32), fill(ref[:, 1],
                                                                                   np.float32)
    return out


def _pad(rows, b: int, length: int, pad: int, left: bool, mask: bool = False) -> np.ndarray:
  out = np.full((b, length), 0 if mask else pad, np.int32)
  for i, row in enumerate(rows):
    row = row[-length:] if left else row[:length]
    cols = slice(length - len(row), length) if left else slice(0, len(row))
    out[i, cols] = 1 if mask else row
  return out


# -- steps ---------------------------------------------------------------------------------------


def sequence_logps(model, params, context_ids, context_mask, target_ids, target_mask,
                   mean: bool):
  """[B] log p(response | context) summed over its tokens (or their mean, for IPO)."""
  scores = model.target_logprobs(params, context_ids, context_mask, target_ids, target_mask)
  total = jnp.sum(scores.logprobs_BxT, axis=1)
  if not mean:
    return total
  return total / jnp.maximum(jnp.sum(scores.loss_mask_BxT, axis=1), 1.0)


def pair_logps(model, params, batch, mean: bool):
  """(chosen [B], rejected [B]) log-probs, both responses in one pass over 2B rows."""
  ctx = jnp.concatenate([batch["context_ids_BxC"]] * 2)
  cmask = jnp.concatenate([batch["context_mask_BxC"]] * 2)
  ids = jnp.concatenate([batch["chosen_ids_BxT"], batch["rejected_ids_BxT"]])
  mask = jnp.concatenate([batch["chosen_mask_BxT"], batch["rejected_mask_BxT"]])
  logps = sequence_logps(model, params, ctx, cmask, ids, mask, mean)
  b = batch["context_ids_BxC"].shape[0]
  return logps[:b], logps[b:]


def batch_terms(model, params, batch, cfg: DPOConfig):
  """(weighted mean loss, metrics as sums with their counts) of a batch of pairs."""
  chosen, rejected = pair_logps(model, params, batch, cfg.loss_type == "ipo")
  ref_c, ref_r = batch["ref_chosen_B"], batch["ref_rejected_B"]
  per_pair = dpo_loss(chosen, rejected, ref_c, ref_r, cfg.beta, cfg.loss_type,
                      cfg.label_smoothing)
  reward_c, reward_r = cfg.beta * (chosen - ref_c), cfg.beta * (rejected - ref_r)
  tie = batch["tie_B"] > 0
  per_pair = jnp.where(tie, jnp.square(reward_c - reward_r), per_pair)
  real = batch["real_B"]
  weight = batch["weight_B"] * real
  decided = real * (1.0 - batch["tie_B"])
  # The mean over the batch's pairs of weight x loss, as the original's reward loss averages
  # sqrt|factor| x loss over its pairs.
  loss = jnp.sum(per_pair * weight) / jnp.maximum(jnp.sum(real), 1.0)
  sums = {"loss_sum": jnp.sum(per_pair * weight),
          "pairs": jnp.sum(real), "decided": jnp.sum(decided),
          "rewards/chosen": jnp.sum(reward_c * decided),
          "rewards/rejected": jnp.sum(reward_r * decided),
          "rewards/accuracies": jnp.sum((reward_c > reward_r) * decided),
          "rewards/margins": jnp.sum((reward_c - reward_r) * decided),
          "logps/chosen": jnp.sum(chosen * decided), "logps/rejected": jnp.sum(rejected * decided)}
  return loss, sums


PER_DECIDED = ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
               "logps/chosen", "logps/rejected")


def means(sums: dict) -> dict[str, float]:
  """TRL's metrics from summed terms: the loss per pair, the rest per non-tie pair."""
  out = {"loss": sums["loss_sum"] / max(sums["pairs"], 1.0)}
  for key in PER_DECIDED:
    out[key] = sums[key] / sums["decided"] if sums["decided"] else float("nan")
  return out


def train_step(state: TrainState, batch: dict, *, model, tx, cfg: DPOConfig):
  (loss, sums), grads = jax.value_and_grad(
      lambda p: batch_terms(model, p, batch, cfg), has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(jnp.add, state.params, updates)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), {
      "loss": loss, **sums}


def eval_step(params, batch: dict, *, model, cfg: DPOConfig):
  return batch_terms(model, params, batch, cfg)[1]


def reference_step(params, batch: dict, *, model, mean: bool):
  """[B, 2] reference log-probs (chosen, rejected) of a batch."""
  return jnp.stack(pair_logps(model, params, batch, mean), axis=1)


def batch_shardings(mesh) -> dict:
  return {k: sharding.batch_sharding(mesh, 1 if k.endswith("_B") else 2) for k in BATCH_KEYS}


@dataclasses.dataclass(frozen=True)
class Programs:
  """DPO's jitted programs. step: (state, batch) -> (state, metrics), the state donated.
  evaluate: (params, batch) -> summed terms. reference: (params, batch) -> [B, 2] log-probs."""

  step: Callable
  evaluate: Callable
  reference: Callable


def programs(model, tx, shardings: TrainState, mesh, cfg: DPOConfig) -> Programs:
  """The programs as the trainer, plan.py and the benchmarks all compile them."""
  batch = batch_shardings(mesh)
  on_params = dict(in_shardings=(shardings.params, batch))
  return Programs(
      step=jit_update(functools.partial(train_step, model=model, tx=tx, cfg=cfg), shardings,
                      mesh, in_shardings=(batch,)),
      evaluate=jax.jit(functools.partial(eval_step, model=model, cfg=cfg), **on_params),
      reference=jax.jit(functools.partial(reference_step, model=model,
                                          mean=cfg.loss_type == "ipo"), **on_params))


# -- the algorithm -------------------------------------------------------------------------------


class DPOTask(loop.JittedStepTask):
  """DPO on the trainer core."""

  monitor, monitor_mode = "val_loss", "min"

  def __init__(self, cfg: DPOConfig, loaded, batcher: PairBatcher, train: Pairs, val: Pairs,
               mesh, shardings, tx, lr_fn):
    self.cfg, self.loaded, self.batcher, self.mesh = cfg, loaded, batcher, mesh
    self.lr_fn = jax.jit(lr_fn)
    self.steps_per_epoch = batcher.num_batches(train)
    jitted = programs(loaded.model, tx, shardings, mesh, cfg)
    self._step, self._eval, ref = jitted.step, jitted.evaluate, jitted.reference
    params = sharding.shard_tree(loaded.params, shardings.params)
    # The reference's log-probs, once: the batches carry them, the steps hold only the policy.
    self.train, self.train_ref = train, self._reference(ref, params, train)
    self.val, self.val_ref = val, self._reference(ref, params, val)

  def _batches(self, pairs: Pairs, ref: np.ndarray, seed, epoch=0, start=0):
    """(pair indices, the global batch, its real tokens) of each batch."""
    for idx in self.batcher.batch_indices(pairs, seed, epoch)[start:]:
      batch = self.batcher.make_batch(pairs.take(idx), None if ref is None else ref[idx])
      tokens = int(sum(batch[k].sum() for k in ("context_mask_BxC", "chosen_mask_BxT",
                                                 "rejected_mask_BxT")))
      yield idx, sharding.global_batch(batch, self.mesh), tokens

  def _reference(self, fn, params, pairs: Pairs) -> np.ndarray:
    out = np.zeros((len(pairs), 2), np.float32)
    for idx, batch, _ in self._batches(pairs, None, None):
      out[idx] = sharding.to_host(fn(params, batch))[:len(idx)]
    return out

  def batches(self, epoch, start_batch):
    for _, batch, tokens in self._batches(self.train, self.train_ref, self.cfg.seed, epoch,
                                          start_batch):
      yield batch, tokens

  def train_log_values(self, metrics):
    return means(metrics)

  progress_keys = ("rewards/accuracies", "rewards/margins")

  def validate(self, state):
    totals: dict[str, float] = {}
    for _, batch, _ in self._batches(self.val, self.val_ref, None):
      for k, v in sharding.to_host(self._eval(state.params, batch)).items():
        totals[k] = totals.get(k, 0.0) + float(v)
    return {f"val_{k}": v for k, v in means(totals).items()}

  def save_model(self, state, path, metadata):
    model_dir.save(dataclasses.replace(self.loaded, params=state.params), path,
                   metadata=metadata)


class DPO(core.Algorithm):
  """DPO for `core.run`: the reward dataset's rated pairs, the policy as its own reference."""

  def prepare(self, cfg: DPOConfig, mesh) -> RewardSplit:
    split = load_train_contexts(cfg)
    core.check_batch_shards(cfg.batch_size, mesh)
    train_ctx, val_ctx = split_contexts(len(split), cfg.val_fraction, cfg.seed)
    for name, ctx in (("training", train_ctx), ("held-out", val_ctx)):
      if not len(preference_pairs(split.ratings, ctx, cfg.ties, cfg.pair_weight)):
        raise DatasetError([Problem(split.path, None, f"no {name} preference pairs (ties "
                                    f"{cfg.ties}, --val_fraction {cfg.val_fraction})")])
    return split

  def build(self, cfg: DPOConfig, loaded, prepared: RewardSplit, mesh) -> core.Setup:
    data = RewardData(prepared, loaded.fmt, cfg.batch_size)
    train_ctx, val_ctx = split_contexts(len(prepared), cfg.val_fraction, cfg.seed)
    train = preference_pairs(prepared.ratings, train_ctx, cfg.ties, cfg.pair_weight)
    val = preference_pairs(prepared.ratings, val_ctx, cfg.ties, cfg.pair_weight)
    batcher = PairBatcher(data, cfg.batch_size)
    state, shardings, tx, lr_fn = core.adamw_state(cfg, loaded.params,
                                                   loaded.model.abstract_params(),
                                                   batcher.num_batches(train), mesh, cfg.seed)
    task = DPOTask(cfg, loaded, batcher, train, val, mesh, shardings, tx, lr_fn)
    return core.Setup(task, state, {"train_pairs": len(train), "val_pairs": len(val)})


def train_dpo(cfg: DPOConfig) -> dict:
  """DPO-trains the policy; returns the loop's summary (run folder, best validation loss,
  per-epoch history)."""
  return core.run(cfg, DPO())
