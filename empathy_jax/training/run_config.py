"""What the train launchers' frozen configs (SFT, reward model, PPO) share: the choice of
model, the runtime options, the loop cadence and the run identity. Each config is a frozen
dataclass that declares the fields these methods read and inherits them from `TrainRunConfig`."""

from __future__ import annotations

import dataclasses

from empathy_jax import preflight
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.training.loop import LoopConfig

# Fields that say how a process was launched, not what it computes: a rerun with other values
# of these is still the same run (resume).
PER_LAUNCH = ("trust_pickle", "coordinator_address", "num_processes", "process_id")


class TrainRunConfig:
  """Methods over the fields every train config has (model, pretrained_model_dir, dtype,
  dropout_rate, remat, scan_layers, max_epochs, log/checkpoint/eval intervals, the launch
  fields)."""

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
