"""Supervised fine-tuning of a dialogue model (`launch/train_dialogue_model.py`).

The train step is one pure jitted function `(state, batch) -> (state, metrics)`: batch sharded
over (data, fsdp), parameters and optimizer state by the logical rules, state donated. Losses as
the original: token cross-entropy over target tokens, pads ignored; AdamW with linear decay to 0
over max_epochs (per epoch by default). The best model by validation loss and the latest train
state are checkpointed; re-running the same command resumes exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import checkpoints, sharding
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.data.pipeline import Batch, make_batcher, tokenize_split
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loading import load_model
from empathy_jax.models.packing import encoder_plan
from empathy_jax.training import runs
from empathy_jax.training.loss import batch_nll
from empathy_jax.training.metrics_log import MetricWriter, progress
from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer
from empathy_jax.training.state import TrainState, abstract_state, create_state, state_shardings


@dataclasses.dataclass(frozen=True)
class SFTConfig:
  """Everything `train_dialogue_model` needs; flags keep the original's names and defaults."""

  dataset_dir: str
  output_dir: str
  model: str | None = None
  pretrained_model_dir: str | None = None
  max_epochs: int = 10
  batch_size: int = 8
  data_erasure_level: float = 0.3
  initial_lr: float = 1e-5
  lr_schedule: str = "epoch"
  warmup_steps: int = 0
  weight_decay: float = 0.01
  clip_norm: float = 0.0
  grad_accum: int = 1
  seed: int = 0
  dtype: str = "float32"
  dropout_rate: float | None = None
  remat: bool = False
  scan_layers: bool = False
  mesh: sharding.MeshConfig = sharding.MeshConfig()
  log_interval: int = 10
  checkpoint_interval: int = 500
  eval_interval: int = 0
  max_train_examples: int | None = None
  max_val_examples: int | None = None
  num_val_samples: int = 3
  sample_max_new_tokens: int = 40
  distributed: bool = False
  stop_after_steps: int = 0  # testing: stop as if killed after this many steps

  def __post_init__(self):
    if (self.model is None) == (self.pretrained_model_dir is None):
      raise ValueError("give exactly one of --model (a registry name) or "
                       "--pretrained_model_dir (a checkpoint to continue from)")
    for name in ("max_epochs", "batch_size", "grad_accum", "log_interval",
                 "checkpoint_interval"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
    if self.batch_size % self.grad_accum:
      raise ValueError(f"--batch_size {self.batch_size} must be divisible by --grad_accum "
                       f"{self.grad_accum}")
    if self.model is not None:
      from empathy_jax.registry import get_model_spec  # pylint: disable=import-outside-toplevel

      try:
        get_model_spec(self.model)
      except KeyError as e:
        raise ValueError(f"--model: {e.args[0]}") from e
    if not os.path.isdir(self.dataset_dir):
      raise ValueError(f"--dataset_dir {self.dataset_dir!r} does not exist")
    self.optimizer()  # validates the schedule flags

  def optimizer(self) -> OptimizerConfig:
    return OptimizerConfig(initial_lr=self.initial_lr, schedule=self.lr_schedule,
                           warmup_steps=self.warmup_steps, weight_decay=self.weight_decay,
                           clip_norm=self.clip_norm)

  def runtime(self) -> RuntimeOptions:
    return RuntimeOptions(dtype=self.dtype, dropout_rate=self.dropout_rate, remat=self.remat,
                          scan_layers=self.scan_layers)

  def identity(self) -> dict:
    """What makes two commands the same run (for resuming); excludes the stop switch."""
    d = dataclasses.asdict(self)
    d.pop("stop_after_steps")
    return d


BATCH_KEYS = ("context_ids_BxC", "context_mask_BxC", "target_ids_BxT", "target_mask_BxT",
              "example_index_B")


def train_step(state: TrainState, batch: dict, *, model, tx, grad_accum: int):
  """One optimizer step on the mean token loss of the batch (accumulated over micro-batches)."""
  rng = jax.random.fold_in(state.rng, state.step)
  if grad_accum == 1:
    # The mean is differentiated directly: no accumulator to zero-fill and add, and no extra
    # pass over every gradient to divide it by the token count.
    (loss, count), grads = _value_and_grad(model, state.params, batch,
                                           jax.random.fold_in(rng, 0), mean=True)
  else:
    micro = jax.tree.map(lambda x: x.reshape(grad_accum, -1, *x.shape[1:]), batch)

    def one(carry, inputs):
      grads, loss, count = carry
      i, mb = inputs
      (l, c), g = _value_and_grad(model, state.params, mb, jax.random.fold_in(rng, i))
      return (jax.tree.map(jnp.add, grads, g), loss + l, count + c), None

    zeros = jax.tree.map(jnp.zeros_like, state.params)
    (grads, loss, count), _ = jax.lax.scan(one, (zeros, 0.0, 0.0),
                                           (jnp.arange(grad_accum), micro))
    denom = jnp.maximum(count, 1.0)
    loss = loss / denom
    grads = jax.tree.map(lambda g: g / denom, grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = jax.tree.map(jnp.add, state.params, updates)
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, {"loss": loss, "tokens": count}


def _value_and_grad(model, params, batch, rng, mean: bool = False):
  """((loss sum or mean, token count), its gradient) on one (micro-)batch with dropout."""
  def f(p):
    s, c = batch_nll(model, p, batch, False, rng)
    return (s / jnp.maximum(c, 1.0) if mean else s), c
  return jax.value_and_grad(f, has_aux=True)(params)


def eval_step(params, batch: dict, *, model):
  return batch_nll(model, params, batch)


class _Data:
  """Tokenized train/val tables and this host's batchers."""

  def __init__(self, cfg: SFTConfig, fmt, tokenizer_source: str):
    cache = os.path.join(cfg.output_dir, "tokenized_cache")
    self.train = self._load(cfg, "train", cfg.max_train_examples, fmt, cache, tokenizer_source)
    self.val = self._load(cfg, "val", cfg.max_val_examples, fmt, cache, tokenizer_source)
    self.val_split = load_dialogue_split(split_dir(cfg.dataset_dir, "val"),
                                         cfg.data_erasure_level)
    kw = dict(process_index=jax.process_index(), process_count=jax.process_count())
    self.train_batcher = make_batcher(fmt, cfg.batch_size, **kw)
    self.val_batcher = make_batcher(fmt, cfg.batch_size, **kw)

  @staticmethod
  def _load(cfg, split, limit, fmt, cache, source):
    data = load_dialogue_split(split_dir(cfg.dataset_dir, split), cfg.data_erasure_level)
    if limit is not None:
      data = data.select(range(min(limit, len(data))))
    return tokenize_split(data, fmt, cache_dir=cache, tokenizer_source=source)


def _to_global(batch: Batch, mesh) -> dict:
  local = {k: getattr(batch, k) for k in BATCH_KEYS}
  return sharding.global_batch(local, mesh)


def _real_tokens(batch: Batch) -> int:
  return int(batch.context_mask_BxC.sum() + batch.target_mask_BxT.sum())


class _Checkpointer:
  """Latest train state (orbax CheckpointManager, async) + run progress as JSON."""

  def __init__(self, run_dir: str):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

    self._ocp = ocp
    self.manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(run_dir, "train_state")),
        options=ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=True))

  def save(self, state: TrainState, progress_meta: dict) -> None:
    ocp = self._ocp
    self.manager.save(int(progress_meta["global_step"]), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(progress_meta)), force=True)

  def restore(self, target: TrainState) -> tuple[TrainState, dict] | None:
    step = self.manager.latest_step()
    if step is None:
      return None
    ocp = self._ocp
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                           sharding=x.sharding), target)
    out = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
    return out.state, dict(out.meta)

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def _samples(loaded, params, data: _Data, n: int, max_new_tokens: int) -> list[dict]:
  """A few greedy validation responses, as text, for the logs."""
  if n <= 0:
    return []
  from empathy_jax.generation.config import resolve  # pylint: disable=import-outside-toplevel
  from empathy_jax.generation.search import generate_ids  # pylint: disable=import-outside-toplevel

  split = data.val_split.select(range(min(n, len(data.val_split))))
  fmt = loaded.fmt
  table = tokenize_split(split, fmt)
  batch = next(make_batcher(fmt, len(split), group_by_length=False).batches(table))
  gen = resolve({"max_new_tokens": max_new_tokens, "beam_width": 1, "sample": False}, {},
                loaded.model.cfg)
  out = generate_ids(loaded.model, params, jnp.asarray(batch.context_ids_BxC),
                     jnp.asarray(batch.context_mask_BxC), gen, jax.random.PRNGKey(0),
                     jnp.arange(len(split)), encoder_plan(loaded.model, batch.context_mask_BxC))
  tokens, mask = np.asarray(out.tokens_BxN), np.asarray(out.mask_BxN)
  return [{"context": split.contexts[i][-1], "target": split.targets[i],
           "output": fmt.decode(tokens[i][mask[i] == 1])} for i in range(len(split))]


def train_dialogue_model(cfg: SFTConfig) -> dict:
  """Fine-tunes and returns a summary: run folder, best validation loss, per-epoch history."""
  if cfg.distributed:
    jax.distributed.initialize()
  logging.info("process %d/%d, %d devices", jax.process_index(), jax.process_count(),
               jax.device_count())
  run_dir, resuming = runs.select_run(cfg.output_dir, cfg.identity())
  loaded = load_model(cfg.model or cfg.pretrained_model_dir, cfg.runtime(), seed=cfg.seed)
  model = loaded.model
  data = _Data(cfg, loaded.fmt, loaded.tokenizer_source)
  steps_per_epoch = data.train_batcher.num_batches(len(data.train))
  tx, lr_fn = make_optimizer(cfg.optimizer(), steps_per_epoch, cfg.max_epochs)

  mesh = sharding.make_mesh(cfg.mesh)
  boxed = model.abstract_params()
  shardings = state_shardings(abstract_state(boxed, tx), mesh)
  state = create_state(loaded.params, tx, jax.random.PRNGKey(cfg.seed), shardings)
  batch_shardings = {k: sharding.batch_sharding(mesh, 1 if k == "example_index_B" else 2)
                     for k in BATCH_KEYS}
  step_fn = jax.jit(functools.partial(train_step, model=model, tx=tx,
                                      grad_accum=cfg.grad_accum),
                    in_shardings=(shardings, batch_shardings),
                    out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=0)
  eval_fn = jax.jit(functools.partial(eval_step, model=model),
                    in_shardings=(shardings.params, batch_shardings))

  ckpt = _Checkpointer(run_dir)
  meta = {"epoch": 0, "batch": 0, "global_step": 0, "best_val_loss": None, "history": []}
  restored = ckpt.restore(state) if resuming else None
  if restored is not None:
    state, meta = restored
    logging.info("resuming %s at epoch %d batch %d", run_dir, meta["epoch"], meta["batch"])
  writer = MetricWriter(run_dir)
  with open(os.path.join(run_dir, "hparams.json"), "w") as f:
    json.dump({**cfg.identity(), "steps_per_epoch": steps_per_epoch}, f, indent=2, default=str)

  stopped = False
  for epoch in range(meta["epoch"], cfg.max_epochs):
    bar = progress(steps_per_epoch, meta["batch"] if epoch == meta["epoch"] else 0,
                   f"epoch {epoch + 1}/{cfg.max_epochs}")
    # Throughput between two completed log steps: reading a step's loss waits for that step,
    # and it is read only after the next steps are dispatched (the device never waits).
    pending, tokens_seen = None, 0
    last_read = (0, time.perf_counter())
    start_batch = meta["batch"] if epoch == meta["epoch"] else 0
    for b, batch in enumerate(data.train_batcher.batches(data.train, cfg.seed, epoch,
                                                         start_batch), start=start_batch):
      state, metrics = step_fn(state, _to_global(batch, mesh))
      tokens_seen += _real_tokens(batch)
      global_step = epoch * steps_per_epoch + b + 1
      bar.update(1)
      if global_step % cfg.log_interval == 0:
        if pending is not None:
          step_no, m, tokens_then = pending
          loss = float(m["loss"])
          now = time.perf_counter()
          tps = (tokens_then - last_read[0]) / max(now - last_read[1], 1e-9)
          last_read = (tokens_then, now)
          bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tps:.0f}")
          writer.scalars(step_no, {"train_loss": loss, "tokens_per_second": tps,
                                   "learning_rate": float(lr_fn(step_no))})
        else:
          jax.block_until_ready(metrics)
          last_read = (tokens_seen, time.perf_counter())
        pending = (global_step, metrics, tokens_seen)
      if global_step % cfg.checkpoint_interval == 0:
        ckpt.save(state, {**meta, "epoch": epoch, "batch": b + 1, "global_step": global_step})
      if cfg.eval_interval and global_step % cfg.eval_interval == 0:
        val = _validate(eval_fn, state, data, mesh)
        writer.scalars(global_step, {"val_loss_interval": val})
      if cfg.stop_after_steps and global_step >= cfg.stop_after_steps:
        ckpt.save(state, {**meta, "epoch": epoch, "batch": b + 1, "global_step": global_step})
        stopped = True
        break
    if pending is not None:
      writer.scalars(pending[0], {"train_loss": float(pending[1]["loss"])})
    bar.close()
    if stopped:
      break
    val_loss = _validate(eval_fn, state, data, mesh)
    global_step = (epoch + 1) * steps_per_epoch
    record = {"epoch": epoch + 1, "val_loss": val_loss, "val_ppl": float(np.exp(val_loss))}
    writer.scalars(global_step, {"val_loss": val_loss, "val_ppl": record["val_ppl"]})
    best = meta["best_val_loss"]
    if best is None or val_loss < best:
      meta["best_val_loss"] = val_loss
      ckpt.wait()
      _save_model(loaded, state, os.path.join(run_dir, "best"), record)
      record["best"] = True
    samples = _samples(loaded, state.params, data, cfg.num_val_samples,
                       cfg.sample_max_new_tokens)
    for i, s in enumerate(samples):
      writer.text(global_step, f"val_sample_{i}", json.dumps(s, ensure_ascii=False))
    record["samples"] = samples
    logging.info("epoch %d: val_loss %.4f ppl %.2f", epoch + 1, val_loss, record["val_ppl"])
    print(json.dumps({k: v for k, v in record.items() if k != "samples"}))
    meta = {**meta, "epoch": epoch + 1, "batch": 0, "global_step": global_step,
            "history": meta["history"] + [{k: v for k, v in record.items()
                                           if k != "samples"}]}
    ckpt.save(state, meta)
  ckpt.wait()
  ckpt.close()
  writer.close()
  summary = {"run_dir": run_dir, "best_val_loss": meta["best_val_loss"],
             "history": meta["history"], "finished": not stopped,
             "global_step": int(jax.device_get(state.step))}
  if not stopped:
    _save_model(loaded, state, os.path.join(run_dir, "latest"), {"final": True})
    runs.mark_finished(run_dir, summary)
  summary["params"] = state.params
  return summary


def _validate(eval_fn, state, data: _Data, mesh) -> float:
  losses = []
  for batch in data.val_batcher.batches(data.val):
    s, c = eval_fn(state.params, _to_global(batch, mesh))
    losses.append((s, c))
  values = [float(s) / max(float(c), 1.0) for s, c in jax.device_get(losses) if float(c) > 0]
  return float(np.mean(values)) if values else float("nan")


def _save_model(loaded, state: TrainState, path: str, metadata: dict[str, Any]) -> None:
  params = jax.tree.map(np.asarray, jax.device_get(state.params))
  snapshot = dataclasses.replace(loaded, params=params)
  if jax.process_index() == 0:
    checkpoints.save_model_dir(snapshot, path, metadata=metadata)
