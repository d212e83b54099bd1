"""Supervised fine-tuning of a dialogue model (`launch/train_dialogue_model.py`) on the trainer
core (`training/loop.py`); this module holds only what is SFT's own: its config, loss and batches.

The train step is one pure jitted function `(state, batch) -> (state, metrics)`: batch sharded
over (data, fsdp), parameters and optimizer state by the logical rules, state donated. Losses as
the original: token cross-entropy over target tokens, pads ignored; AdamW with linear decay to 0
over max_epochs (per epoch by default). Best model by validation loss.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import preflight, sharding
from empathy_jax.data import tfdata
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.data.pipeline import Batch, make_batcher, tokenize_split
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate_ids
from empathy_jax.models import model_dir
from empathy_jax.models.packing import encoder_plan
from empathy_jax.settings import setting
from empathy_jax.training import core, loop
from empathy_jax.training.loss import batch_nll
from empathy_jax.training.run_config import TrainRunConfig
from empathy_jax.training.state import TrainState, jit_update


@dataclasses.dataclass(frozen=True, kw_only=True)
class SFTConfig(TrainRunConfig):
  """Everything `train_dialogue_model` needs; flags keep the original's names and defaults."""

  dataset_dir: str = setting(help="Dialogue dataset folder (train/val/test).")
  max_epochs: int = setting(10, "Training epochs.")
  batch_size: int = setting(8, "Global batch size.")
  data_erasure_level: float = setting(0.3, "Fraction of instructions/knowledge erased "
                                      "(original's seeded selection).")
  initial_lr: float = setting(1e-5, "AdamW learning rate, decayed linearly to 0.")
  lr_schedule: str = setting("epoch", "Decay per epoch (the original) or per step.",
                             ("epoch", "step"))
  grad_accum: int = setting(1, "Micro-batches per step (batch_size divisible).")
  log_interval: int = 10
  checkpoint_interval: int = 500
  max_train_examples: int | None = setting(None, "Use only the first N train rows.")
  max_val_examples: int | None = setting(None, "Use only the first N val rows.")
  num_val_samples: int = setting(3, "Validation responses logged per epoch.")
  sample_max_new_tokens: int = setting(40, "New tokens of each logged validation sample.")
  input_pipeline: str = setting("python", "Tokenize with transformers (python) or with "
                                "tf.data and in-graph SentencePiece (tfdata, GODEL family; pip "
                                "install 'empathy-jax[tf]'): the same ids.", ("python", "tfdata"))

  def check(self) -> None:
    if self.batch_size % self.grad_accum:
      raise ValueError(f"--batch_size {self.batch_size} must be divisible by --grad_accum "
                       f"{self.grad_accum}")

  def check_inputs(self) -> None:
    """Every file the run will read or write, checked before any heavy work."""
    preflight.check_dialogue_dataset(self.dataset_dir, ("train", "val"))
    preflight.check_model_source(self.model or self.pretrained_model_dir)
    preflight.check_writable(self.output_dir)
    if self.input_pipeline == "tfdata":
      tfdata.require_tf()  # says how to install the [tf] extra

  def schedule(self) -> str:
    return self.lr_schedule


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


def batch_shardings(mesh) -> dict:
  return {k: sharding.batch_sharding(mesh, 1 if k == "example_index_B" else 2)
          for k in BATCH_KEYS}


@dataclasses.dataclass(frozen=True)
class Programs:
  """SFT's jitted programs. step: (state, batch) -> (state, metrics), the state donated.
  evaluate: (params, batch) -> (summed token NLL, token count)."""

  step: Callable
  evaluate: Callable


def programs(model, tx, shardings: TrainState, mesh, grad_accum: int = 1) -> Programs:
  """The programs as the trainer, plan.py and the benchmarks all compile them."""
  batch = batch_shardings(mesh)
  return Programs(
      step=jit_update(functools.partial(train_step, model=model, tx=tx, grad_accum=grad_accum),
                      shardings, mesh, in_shardings=(batch,)),
      evaluate=jax.jit(functools.partial(eval_step, model=model),
                       in_shardings=(shardings.params, batch)))


def _value_and_grad(model, params, batch, rng, mean: bool = False):
  """((loss sum or mean, token count), its gradient) on one (micro-)batch with dropout."""
  def f(p):
    s, c = batch_nll(model, p, batch, False, rng)
    return (s / jnp.maximum(c, 1.0) if mean else s), c
  return jax.value_and_grad(f, has_aux=True)(params)


def eval_step(params, batch: dict, *, model):
  return batch_nll(model, params, batch)


class SFTData:
  """Tokenized train/val tables and their batchers (every host makes every global batch)."""

  def __init__(self, cfg: SFTConfig, fmt, tokenizer_source: str):
    cache = os.path.join(cfg.output_dir, "tokenized_cache")
    load = functools.partial(self._load, cfg, fmt=fmt, cache=cache, source=tokenizer_source)
    self.train = load("train", cfg.max_train_examples)
    self.val = load("val", cfg.max_val_examples)
    self.val_split = load_dialogue_split(split_dir(cfg.dataset_dir, "val"),
                                         cfg.data_erasure_level)
    self.train_batcher = make_batcher(fmt, cfg.batch_size)
    self.val_batcher = make_batcher(fmt, cfg.batch_size)

  @staticmethod
  def _load(cfg, split, limit, fmt, cache, source):
    data = load_dialogue_split(split_dir(cfg.dataset_dir, split), cfg.data_erasure_level)
    if limit is not None:
      data = data.select(range(min(limit, len(data))))
    return tokenize_split(data, fmt, cache_dir=cache, tokenizer_source=source,
                          pipeline=cfg.input_pipeline)


def _to_global(batch: Batch, mesh) -> dict:
  return sharding.global_batch({k: getattr(batch, k) for k in BATCH_KEYS}, mesh)


class SFTTask(loop.JittedStepTask):
  """SFT on the trainer core: batches, the jitted step, validation loss, greedy samples."""

  monitor, monitor_mode = "val_loss", "min"

  def __init__(self, cfg: SFTConfig, loaded, data: SFTData, mesh, shardings: TrainState, tx,
               lr_fn):
    self.cfg, self.loaded, self.data, self.mesh = cfg, loaded, data, mesh
    self.lr_fn = jax.jit(lr_fn)  # one program, not an eager op-by-op schedule per log
    self.steps_per_epoch = data.train_batcher.num_batches(len(data.train))
    jitted = programs(loaded.model, tx, shardings, mesh, cfg.grad_accum)
    self._step, self._eval = jitted.step, jitted.evaluate

  def batches(self, epoch, start_batch):
    for batch in self.data.train_batcher.batches(self.data.train, self.cfg.seed, epoch,
                                                 start_batch):
      yield _to_global(batch, self.mesh), _real_tokens(batch)

  def validate(self, state):
    val_loss = loop.mean_over_batches([
        self._eval(state.params, _to_global(batch, self.mesh))
        for batch in self.data.val_batcher.batches(self.data.val)])
    return {"val_loss": val_loss, "val_ppl": float(np.exp(val_loss))}

  def samples(self, state):
    return validation_samples(self.loaded, state.params, self.data.val_split, self.mesh,
                              self.cfg.num_val_samples, self.cfg.sample_max_new_tokens)

  def save_model(self, state, path, metadata):
    model_dir.save(dataclasses.replace(self.loaded, params=state.params), path,
                   metadata=metadata)


def _real_tokens(batch: Batch) -> int:
  return int(batch.context_mask_BxC.sum() + batch.target_mask_BxT.sum())


def validation_samples(loaded, params, split, mesh, n: int, max_new_tokens: int) -> list[dict]:
  """A few greedy validation responses, as text, for the logs (inputs replicated: every
  process holds the same few rows)."""
  if n <= 0:
    return []

  split = split.select(range(min(n, len(split))))
  fmt = loaded.fmt
  table = tokenize_split(split, fmt)
  batch = next(make_batcher(fmt, len(split), group_by_length=False).batches(table))
  gen = resolve({"max_new_tokens": max_new_tokens, "beam_width": 1, "sample": False}, {},
                loaded.model.cfg)
  ids, mask, rows, plan = sharding.replicate(
      (batch.context_ids_BxC, batch.context_mask_BxC, np.arange(len(split)),
       encoder_plan(loaded.model, batch.context_mask_BxC)), mesh)
  out = generate_ids(loaded.model, params, ids, mask, gen, jax.random.PRNGKey(0), rows, plan)
  tokens, out_mask = sharding.to_host((out.tokens_BxN, out.mask_BxN))
  return [{"context": split.contexts[i][-1], "target": split.targets[i],
           "output": fmt.decode(tokens[i][out_mask[i] == 1])} for i in range(len(split))]


class SFT(core.Algorithm):
  """SFT for `core.run`: the dialogue split's batches and the token cross-entropy."""

  def build(self, cfg: SFTConfig, loaded, prepared, mesh) -> core.Setup:
    if cfg.input_pipeline == "tfdata":
      tfdata.check_format(loaded.fmt)  # another family: a clear error before any data work
    data = SFTData(cfg, loaded.fmt, loaded.tokenizer_source)
    steps_per_epoch = data.train_batcher.num_batches(len(data.train))
    state, shardings, tx, lr_fn = core.adamw_state(cfg, loaded.params,
                                                   loaded.model.abstract_params(),
                                                   steps_per_epoch, mesh, cfg.seed)
    task = SFTTask(cfg, loaded, data, mesh, shardings, tx, lr_fn)

    def finish(state, summary):
      return {**summary, "params": state.params}
    return core.Setup(task, state, finish=finish)


def train_dialogue_model(cfg: SFTConfig) -> dict:
  """Fine-tunes and returns a summary: run folder, best validation loss, per-epoch history,
  final parameters."""
  return core.run(cfg, SFT())
