"""The trainer core's entry point: `run(cfg, algorithm)` owns a training run's setup, the same
for every algorithm (SFT, reward model, PPO, DPO, GRPO/RLOO):

  inputs checked -> multi-host start -> mesh -> the algorithm's own inputs (read before the run
  folder exists, so bad data fails first) -> run folder (new, or resumed) -> model -> the
  algorithm's task and initial state -> hyper-parameters written -> `loop.fit`.

An algorithm is a small object with two methods: `prepare` (read and check its data) and
`build` (its task, its initial state, the hyper-parameters it records, and optionally what it
adds to the summary). Everything else a run does (cadence, resume, `best/`, logs) is
`loop.fit`'s.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from typing import Any, Callable

import jax

from empathy_jax import sharding
from empathy_jax.models.loading import load_model
from empathy_jax.training import loop, runs
from empathy_jax.training.optimizer import make_optimizer
from empathy_jax.training.state import abstract_state, create_state, state_shardings


@dataclasses.dataclass
class Setup:
  """What an algorithm's `build` hands to the loop.

  task: the `loop.Task` (batches, jitted step, validation, model saving).
  state: the initial train state, placed on the mesh.
  hparams: values recorded beside the config in the run's hparams (steps per epoch, ...).
  finish: (final state, loop summary) -> summary, for what the algorithm returns besides it.
  """

  task: loop.Task
  state: Any
  hparams: dict = dataclasses.field(default_factory=dict)
  finish: Callable[[Any, dict], dict] | None = None


class Algorithm(abc.ABC):
  """One training algorithm, as `run` sees it."""

  def prepare(self, cfg, mesh) -> Any:  # pylint: disable=unused-argument
    """Reads and checks the algorithm's own inputs before the run folder is made."""
    return None

  def load(self, cfg) -> Any:
    """The model training starts from: by default the config's `--model` or
    `--pretrained_model_dir` (an algorithm that builds its own model returns it, or None)."""
    return load_model(cfg.model or cfg.pretrained_model_dir, cfg.runtime(), seed=cfg.seed,
                      trust_pickle=cfg.trust_pickle)

  @abc.abstractmethod
  def build(self, cfg, loaded, prepared, mesh) -> Setup:
    """The task and initial state for the model `loaded` (the config's `--model` or
    `--pretrained_model_dir`, loaded by `run`)."""


def run(cfg, algorithm: Algorithm) -> dict:
  """Trains with `algorithm` under `cfg` (a `TrainRunConfig`); returns the loop's summary
  (run folder, best monitored value, per-epoch history), plus what the algorithm adds."""
  cfg.check_inputs()
  if cfg.distributed:
    sharding.initialize_distributed(cfg.coordinator_address, cfg.num_processes, cfg.process_id)
  logging.info("process %d/%d, %d devices", jax.process_index(), jax.process_count(),
               jax.device_count())
  mesh = sharding.make_mesh(cfg.mesh)
  prepared = algorithm.prepare(cfg, mesh)
  run_dir, resuming = runs.select_run(cfg.output_dir, cfg.identity())
  loaded = algorithm.load(cfg)
  setup = algorithm.build(cfg, loaded, prepared, mesh)
  runs.write_hparams(run_dir, {**cfg.identity(), "steps_per_epoch": setup.task.steps_per_epoch,
                               **setup.hparams})
  state, summary = loop.fit(setup.task, setup.state, cfg.loop(), run_dir, resuming)
  return setup.finish(state, summary) if setup.finish else summary


def check_batch_shards(batch_size: int, mesh) -> None:
  """Raises ValueError unless `batch_size` rows split evenly over the mesh's batch axes."""
  shards = sharding.batch_shards(mesh)
  if batch_size % shards:
    raise ValueError(f"--batch_size {batch_size} must be a multiple of the mesh's {shards} "
                     f"batch shards (data x fsdp)")


def adamw_state(cfg, params, abstract_params, updates_per_epoch: int, mesh, seed: int):
  """(state, its shardings, optimizer, schedule) for algorithms whose state is one set of
  trained parameters (SFT, reward model, DPO, GRPO): AdamW from `cfg.optimizer()` scheduled
  over `updates_per_epoch` x `cfg.max_epochs`, the state sharded by the logical rules."""
  tx, lr_fn = make_optimizer(cfg.optimizer(), updates_per_epoch, cfg.max_epochs)
  shardings = state_shardings(abstract_state(abstract_params, tx), mesh)
  state = create_state(params, tx, jax.random.PRNGKey(seed), shardings)
  return state, shardings, tx, lr_fn
