"""Wraps the library's training loop, checkpointer and model writer so that the process kills
itself at the n-th arrival at a named point (see sitecustomize.py)."""

import collections
import functools
import os
import signal

POINTS = ("step", "checkpoint_write", "validation", "model_write")


def install(spec: str) -> None:
  from empathy_jax.models import model_dir
  from empathy_jax.training import checkpointing, loop

  point, _, nth = spec.partition(":")
  if point not in POINTS:
    raise ValueError(f"EMPATHY_JAX_KILL_AT: unknown point {point!r}; one of {POINTS}")
  counts = collections.Counter()

  def reached(name):
    if name == point:
      counts[name] += 1
      if counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)

  fit = loop.fit

  @functools.wraps(fit)
  def fit_with_faults(task, *args, **kwargs):
    step, validate = task.step, task.validate

    def faulty_step(state, batch):
      out = step(state, batch)  # dispatched; not waited for
      reached("step")
      return out

    def faulty_validate(state):
      reached("validation")
      return validate(state)

    object.__setattr__(task, "step", faulty_step)  # on this task object only
    object.__setattr__(task, "validate", faulty_validate)
    return fit(task, *args, **kwargs)

  loop.fit = fit_with_faults

  save = checkpointing.TrainCheckpointer.save

  @functools.wraps(save)
  def save_with_faults(self, state, progress):
    saved = save(self, state, progress)
    if saved:  # an async write in flight
      reached("checkpoint_write")
    return saved

  checkpointing.TrainCheckpointer.save = save_with_faults

  save_tree = model_dir.save_tree

  @functools.wraps(save_tree)
  def save_tree_with_faults(path, tree):
    save_tree(path, tree)
    # A folder being written (`model_dir.save`): its parameters are in, model_info.json not.
    if os.path.basename(path) == "params" and os.path.dirname(path).endswith(".tmp"):
      reached("model_write")

  model_dir.save_tree = save_tree_with_faults
