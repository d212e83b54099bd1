"""The resumable train state of a run: one orbax CheckpointManager (async, multi-host), and the
run's progress (epoch, batch, best value, history) saved with it in the same step.

The loop never asks for the same step twice (periodic saves skip an epoch's last step, whose
save follows validation); `save` still refuses a step already on disk rather than failing
inside orbax, so a resumed run cannot crash on a step it had saved before the kill. A kill
during an async write leaves orbax's temporary folder, which is never restored from: the run
resumes from the previous committed step.
"""

from __future__ import annotations

import logging
import os

import jax


class TrainCheckpointer:
  """Latest train state + progress metadata under `run_dir/train_state/<step>/`."""

  def __init__(self, run_dir: str, max_to_keep: int = 1):
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

    self._ocp = ocp
    self.manager = ocp.CheckpointManager(
        os.path.abspath(os.path.join(run_dir, "train_state")),
        options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                             enable_async_checkpointing=True))

  def save(self, state, progress: dict) -> bool:
    """Starts an async save of `state` and `progress` at `progress["global_step"]`."""
    step = int(progress["global_step"])
    latest = self.manager.latest_step()
    if latest is not None and step <= latest:
      logging.info("train state of step %d already saved (latest %d): not saved again", step,
                   latest)
      return False
    ocp = self._ocp
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(progress)))
    return True

  def restore(self, target) -> tuple[object, dict] | None:
    """(state, progress) of the latest committed step, shaped and sharded like `target`."""
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
