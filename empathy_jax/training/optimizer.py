"""AdamW with the original's learning-rate schedules (dialogue models: linear decay to 0 over
max_epochs, stepped per epoch, no warmup; reward model: halved every epoch, torch's StepLR), or
per-step decay with warmup; optional global-norm clipping."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import optax

from empathy_jax.settings import setting


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """initial_lr: peak learning rate. schedule: "epoch" (the original's linear decay per epoch),
  "step" (per step) or "halving" (x0.5 per epoch: the original reward model's StepLR).
  weight_decay / betas / eps: torch.optim.AdamW's defaults (the original's optimizer).
  clip_norm: global gradient-norm clip (0 = off). warmup_steps: only with schedule="step"."""

  initial_lr: float = 1e-5
  schedule: str = "epoch"
  warmup_steps: int = 0
  weight_decay: float = 0.01
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  clip_norm: float = 0.0

  def __post_init__(self):
    if self.schedule not in ("epoch", "step", "halving"):
      raise ValueError(f"lr schedule must be 'epoch', 'step' or 'halving', got "
                       f"{self.schedule!r}")
    if self.initial_lr <= 0:
      raise ValueError(f"initial_lr must be positive, got {self.initial_lr}")
    if self.warmup_steps and self.schedule != "step":
      raise ValueError(f"--warmup_steps needs the per-step learning-rate schedule; this "
                       f"run's is {self.schedule!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerSettings:
  """The AdamW flags every trainer's config has. A config re-declares a field to give it its
  own default or help, and overrides `schedule` when it does not decay per step."""

  initial_lr: float = setting(1e-5, "AdamW peak learning rate.")
  warmup_steps: int = setting(0, "Linear warm-up steps (per-step schedules only).")
  weight_decay: float = setting(0.01, "AdamW weight decay (torch's default).")
  clip_norm: float = setting(0.0, "Global gradient-norm clipping (0: off).")

  def schedule(self) -> str:
    """The learning rate's decay: "step", "epoch" or "halving" (`OptimizerConfig`)."""
    return "step"

  def optimizer(self) -> OptimizerConfig:
    """The optimizer these settings make; ValueError names a bad flag."""
    return OptimizerConfig(initial_lr=self.initial_lr, schedule=self.schedule(),
                           warmup_steps=self.warmup_steps, weight_decay=self.weight_decay,
                           clip_norm=self.clip_norm)


def learning_rate(cfg: OptimizerConfig, steps_per_epoch: int, max_epochs: int):
  """The schedule as a function of the optimizer step."""
  total = steps_per_epoch * max_epochs
  if cfg.schedule == "halving":
    return lambda step: cfg.initial_lr * 0.5 ** jnp.floor_divide(step, steps_per_epoch)
  if cfg.schedule == "epoch":
    def schedule(step):
      epoch = jnp.floor_divide(step, steps_per_epoch)
      return cfg.initial_lr * jnp.maximum(0.0, 1.0 - epoch / max_epochs)
    return schedule
  if cfg.warmup_steps:
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.initial_lr, cfg.warmup_steps),
         optax.linear_schedule(cfg.initial_lr, 0.0, max(total - cfg.warmup_steps, 1))],
        [cfg.warmup_steps])
  return optax.linear_schedule(cfg.initial_lr, 0.0, max(total, 1))


def make_optimizer(cfg: OptimizerConfig, steps_per_epoch: int, max_epochs: int):
  lr = learning_rate(cfg, steps_per_epoch, max_epochs)
  adamw = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
  if cfg.clip_norm > 0:
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw), lr
  return adamw, lr
