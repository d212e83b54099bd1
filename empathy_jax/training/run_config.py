"""What every trainer's frozen config (SFT, reward model, PPO, DPO, GRPO, classifiers) shares:
the common fields (output folder, model source, seed, runtime options, mesh, multi-host launch,
the optimizer's settings), one `__post_init__` that checks them all in one order, and the
methods over them (model choice, runtime, loop cadence, run identity). Each config is a
keyword-only frozen dataclass deriving from `TrainRunConfig` that adds its own fields
(`dataset_dir`, with its own help, `max_epochs`, `log_interval` and `checkpoint_interval` among
them), sets `MODEL_ROLE`, and puts its own rules in `check` (and `complete`)."""

from __future__ import annotations

import dataclasses
import os
from typing import ClassVar

from empathy_jax import preflight, ranges, settings, sharding
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.settings import setting
from empathy_jax.training.loop import LoopConfig
from empathy_jax.training.optimizer import OptimizerSettings

# Fields that say how a process was launched, not what it computes: a rerun with other values
# of these is still the same run (resume).
PER_LAUNCH = ("trust_pickle", "coordinator_address", "num_processes", "process_id")


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainRunConfig(OptimizerSettings):
  """The fields every train config has (flags of the same names), the optimizer's among them."""

  output_dir: str = setting(help="Run folder root (tensorboard_logs/version_N).")
  model: str | None = None
  pretrained_model_dir: str | None = None
  seed: int = setting(0, "Seed of the run: data order, held-out split, new weights, dropout and "
                      "sampling.")
  dtype: str = "float32"
  dropout_rate: float | None = None
  remat: bool = False
  scan_layers: bool = False
  mesh: sharding.MeshConfig = sharding.MeshConfig()
  eval_interval: int = 0
  distributed: bool = False
  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  trust_pickle: bool = False

  # What the run's starting model is to it, in the error that asks for one (None: the trainer
  # builds its own model and takes none).
  MODEL_ROLE: ClassVar[str | None] = "a checkpoint to continue from"

  def __post_init__(self):
    """Every train config's checks in one order: ranges and choices, `complete` (values one
    setting decides for others), the dataset folder, the model choice, the loop's cadence,
    the optimizer, then `check` (the config's own rules). ValueError names the flag."""
    ranges.check(self)
    settings.check_choices(self)
    self.complete()
    if not os.path.isdir(self.dataset_dir):
      raise ValueError(f"--dataset_dir {self.dataset_dir!r} does not exist")
    if self.MODEL_ROLE is not None:
      self.check_model_choice(self.MODEL_ROLE)
    self.loop()
    self.optimizer()
    self.check()

  def complete(self) -> None:
    """Sets the settings another setting decides (a recipe, per-task defaults)."""

  def check(self) -> None:
    """The config's own rules across its fields; ValueError names the flag."""

  def check_model_choice(self, what: str = "a checkpoint to continue from") -> None:
    if (self.model is None) == (self.pretrained_model_dir is None):
      raise ValueError(f"give exactly one of --model (a registry name) or "
                       f"--pretrained_model_dir ({what})")
    if self.model is not None:
      preflight.check_registry_name(self.model)

  def runtime(self) -> RuntimeOptions:
    return RuntimeOptions(dtype=self.dtype, dropout_rate=self.dropout_rate, remat=self.remat,
                          scan_layers=self.scan_layers)

  def loop(self) -> LoopConfig:
    return LoopConfig(max_epochs=self.max_epochs, log_interval=self.log_interval,
                      checkpoint_interval=self.checkpoint_interval,
                      eval_interval=self.eval_interval)

  def identity(self) -> dict:
    """What makes two commands the same run (for resuming)."""
    d = dataclasses.asdict(self)
    for per_launch in PER_LAUNCH:
      d.pop(per_launch)
    return d
