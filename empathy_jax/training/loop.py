"""The trainer core: one loop for SFT, reward-model training and PPO.

A `Task` says what is trained (its batches, its jitted step, its validation, its samples and how
its model is saved); `fit` owns everything else, the same for every task:
- cadence: train-metric logs every `log_interval` steps, a resumable checkpoint every
  `checkpoint_interval` steps and after every epoch, optional mid-epoch validation, and per
  epoch validation, samples, best-model selection;
- exact resume: the train state and progress (epoch, batch, best value, history) are saved in
  one orbax step; re-running the command restores them and replays the same batches;
- `best/` (by the task's monitored validation value) and `latest/` model folders, atomic;
- progress bars and TensorBoard scalars, from process 0 only.

A step's metrics are read only after the next steps are dispatched, so the device never waits
for Python (nanodo's pattern).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import os
import sys
import time
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import sharding
from empathy_jax.errors import DivergedError
from empathy_jax.training import runs
from empathy_jax.training.checkpointing import TrainCheckpointer
from empathy_jax.training.metrics_log import MetricWriter, progress


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  """The cadence of a run (flags keep the original's names where it had them)."""

  max_epochs: int
  log_interval: int = 10
  checkpoint_interval: int = 500
  eval_interval: int = 0  # extra validation every N steps; 0: per epoch only

  def __post_init__(self):
    for name in ("max_epochs", "log_interval", "checkpoint_interval"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")
    if self.eval_interval < 0:
      raise ValueError(f"--eval_interval must be >= 0, got {self.eval_interval}")


class Task(abc.ABC):
  """What one kind of training plugs into `fit`.

  Attributes:
    steps_per_epoch: optimizer steps in one epoch.
    monitor: the key of `validate()`'s result that selects `best/`.
    monitor_mode: "min" (losses) or "max" (rewards).
  """

  steps_per_epoch: int
  monitor: str = "val_loss"
  monitor_mode: str = "min"

  @abc.abstractmethod
  def batches(self, epoch: int, start_batch: int) -> Iterator[Any]:
    """The epoch's global batches from `start_batch` on, the same on every run."""

  @abc.abstractmethod
  def step(self, state, batch) -> tuple[Any, dict]:
    """Dispatches one train step: (new state, metrics as device scalars, "loss" among them)."""

  @abc.abstractmethod
  def validate(self, state) -> dict[str, float]:
    """Validation metrics, the monitored one included."""

  def samples(self, state) -> list[dict]:  # pylint: disable=unused-argument
    """A few validation outputs as text for the logs."""
    return []

  def learning_rate(self, step: int) -> float | None:  # pylint: disable=unused-argument
    return None

  def train_log_values(self, metrics: dict[str, float]) -> dict[str, float]:
    """A logged step's metrics (host floats) as written, without the `train_` prefix; tasks
    derive ratios here (e.g. accuracy only when the batch has decided pairs)."""
    return {k: v for k, v in metrics.items() if k != "tokens"}

  def real_tokens(self, batch) -> int:  # pylint: disable=unused-argument
    """Non-pad tokens in a batch, counted on the host (for tokens/s); 0 if not counted."""
    return 0

  def episodes(self, batch) -> int:  # pylint: disable=unused-argument
    """Real examples in a batch (for episodes/s, PPO's throughput); 0 if not counted."""
    return 0

  # Logged values shown on the progress bar besides the loss and the rates.
  progress_keys: tuple[str, ...] = ()

  @abc.abstractmethod
  def save_model(self, state, path: str, metadata: dict) -> None:
    """Writes the trained model as a model folder (called by every process)."""


class JittedStepTask(Task):
  """A task whose batches are (global batch, real tokens) pairs, each stepped by one jitted
  program `self._step(state, batch)`, its learning rate `self.lr_fn(step)` (SFT, the reward
  model, DPO)."""

  _step: Any
  lr_fn: Any

  def step(self, state, batch):
    return self._step(state, batch[0])

  def real_tokens(self, batch) -> int:
    return batch[1]

  def learning_rate(self, step):
    return float(self.lr_fn(step))


def fresh_progress() -> dict:
  return {"epoch": 0, "batch": 0, "global_step": 0, "best": None, "history": []}


def fit(task: Task, state, cfg: LoopConfig, run_dir: str, resuming: bool) -> tuple[Any, dict]:
  """Trains `state` to the end of `cfg.max_epochs` (or resumes it); returns (state, summary)."""
  ckpt = TrainCheckpointer(run_dir)
  meta = fresh_progress()
  restored = ckpt.restore(state) if resuming else None
  if restored is not None:
    state, meta = restored
    if jax.process_index() == 0:
      print(f"resuming {run_dir} from step {meta['global_step']} (epoch {meta['epoch'] + 1}, "
            f"batch {meta['batch']})", file=sys.stderr, flush=True)
  writer = MetricWriter(run_dir)
  try:
    for epoch in range(meta["epoch"], cfg.max_epochs):
      start = meta["batch"] if epoch == meta["epoch"] else 0
      state = _train_epoch(task, state, cfg, epoch, start, ckpt, meta, writer, run_dir)
      state, meta = _end_epoch(task, state, epoch, meta, ckpt, writer, run_dir)
  except DivergedError:
    ckpt.close()
    writer.close()
    raise
  ckpt.wait()
  ckpt.close()
  writer.close()
  summary = {"run_dir": run_dir, f"best_{task.monitor}": meta["best"],
             "history": meta["history"], "finished": True,
             "global_step": int(sharding.to_host(state.step))}
  task.save_model(state, os.path.join(run_dir, "latest"), {"final": True})
  runs.mark_finished(run_dir, summary)
  return state, summary


class _TrainLog:
  """Reads a logged step's metrics once later steps are dispatched. Rates (tokens/s,
  episodes/s) are the work between two logged steps over the time between their `add`s: each
  `add` waits for the previous logged step, so in steady state that time is the device's."""

  def __init__(self, writer: MetricWriter, bar, task: Task, run_dir: str):
    self.writer, self.bar, self.task, self.run_dir = writer, bar, task, run_dir
    self.pending: tuple[int, dict, np.ndarray, float] | None = None
    self.counts = np.zeros(2)  # tokens, episodes
    self.last: tuple[np.ndarray, float] | None = None

  def add(self, step: int, metrics: dict) -> None:
    if self.pending is not None:
      self.flush()
    else:  # the first logged step: start the clock once it is done
      jax.block_until_ready(metrics)
    self.pending = (step, metrics, self.counts.copy(), time.perf_counter())
    if self.last is None:
      self.last = self.pending[2:]

  def flush(self) -> None:
    if self.pending is None:
      return
    step, metrics, counts, at = self.pending
    host = {k: float(v) for k, v in sharding.to_host(metrics).items()}
    if not math.isfinite(host["loss"]):
      raise DivergedError(self.run_dir, step, f"the train loss is {host['loss']}")
    values = {f"train_{k}": v for k, v in self.task.train_log_values(host).items()}
    done, seconds = counts - self.last[0], max(at - self.last[1], 1e-9)
    bar = {"loss": f"{values['train_loss']:.4f}"}
    for (name, short), n in zip((("tokens", "tok_s"), ("episodes", "ep_s")), done):
      if n > 0:
        values[f"{name}_per_second"] = n / seconds
        bar[short] = f"{n / seconds:.3g}"
    self.last = (counts, at)
    lr = self.task.learning_rate(step)
    if lr is not None:
      values["learning_rate"] = lr
    for key in self.task.progress_keys:
      if f"train_{key}" in values:
        bar[key.rsplit("/", 1)[-1]] = f"{values[f'train_{key}']:.3g}"
    self.bar.set_postfix(**bar)
    self.writer.scalars(step, values)
    self.pending = None


@jax.jit
def _all_finite(params) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)
                            if jnp.issubdtype(x.dtype, jnp.inexact)]))


def check_finite(state, run_dir: str, step: int) -> None:
  """Raises `DivergedError` unless every floating parameter of `state` is finite (one device
  reduction and one host read: called before a state is saved, never per step)."""
  if not bool(sharding.to_host(_all_finite(state.params))):
    raise DivergedError(run_dir, step, "a parameter is NaN or infinite")


def _train_epoch(task: Task, state, cfg: LoopConfig, epoch: int, start: int,
                 ckpt: TrainCheckpointer, meta: dict, writer: MetricWriter, run_dir: str):
  n = task.steps_per_epoch
  bar = progress(n, start, f"epoch {epoch + 1}/{cfg.max_epochs}")
  log = _TrainLog(writer, bar, task, run_dir)
  try:  # the bar is drawn for the last time before an error is printed
    for b, batch in enumerate(task.batches(epoch, start), start=start):
      state, metrics = task.step(state, batch)
      global_step = epoch * n + b + 1
      log.counts += (task.real_tokens(batch), task.episodes(batch))
      bar.update(1)
      if global_step % cfg.log_interval == 0:
        log.add(global_step, metrics)
      # The epoch's last step is saved after validation, with the epoch's results.
      if global_step % cfg.checkpoint_interval == 0 and b + 1 < n:
        log.flush()
        check_finite(state, run_dir, global_step)
        ckpt.save(state, {**meta, "epoch": epoch, "batch": b + 1, "global_step": global_step})
      if cfg.eval_interval and global_step % cfg.eval_interval == 0:
        values = task.validate(state)
        writer.scalars(global_step, {f"{k}_interval": v for k, v in values.items()})
    log.flush()
  finally:
    bar.close()
  return state


def _improved(task: Task, value: float, best: float | None) -> bool:
  if value is None or math.isnan(value):
    return False
  if best is None:
    return True
  return value < best if task.monitor_mode == "min" else value > best


def _end_epoch(task: Task, state, epoch: int, meta: dict, ckpt: TrainCheckpointer,
               writer: MetricWriter, run_dir: str):
  """Validation, best model, samples and the end-of-epoch checkpoint."""
  global_step = (epoch + 1) * task.steps_per_epoch
  ckpt.wait()  # a train-state write still in flight is committed before validation starts
  check_finite(state, run_dir, global_step)
  record = {"epoch": epoch + 1, **task.validate(state)}
  if not math.isfinite(record[task.monitor]):
    raise DivergedError(run_dir, global_step, f"{task.monitor} is {record[task.monitor]}")
  writer.scalars(global_step, {k: v for k, v in record.items() if k != "epoch"})
  best = meta["best"]
  if _improved(task, record[task.monitor], best):
    best = record[task.monitor]
    task.save_model(state, os.path.join(run_dir, "best"), record)
    record["best"] = True
  for i, s in enumerate(task.samples(state)):
    writer.text(global_step, f"val_sample_{i}", json.dumps(s, ensure_ascii=False))
  if jax.process_index() == 0:
    print(json.dumps(record), flush=True)
  meta = {**meta, "epoch": epoch + 1, "batch": 0, "global_step": global_step, "best": best,
          "history": meta["history"] + [record]}
  ckpt.save(state, meta)
  return state, meta


def mean_over_batches(pairs) -> float:
  """Mean over batches of each batch's mean (sum / count); batches with no tokens skipped."""
  values = [float(s) / float(c) for s, c in sharding.to_host(list(pairs)) if float(c) > 0]
  return float(np.mean(values)) if values else float("nan")
