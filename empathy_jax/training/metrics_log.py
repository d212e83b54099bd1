"""TensorBoard event files (tensorboardX) and a progress bar; only process 0 writes."""

from __future__ import annotations

import jax


class MetricWriter:
  def __init__(self, log_dir: str):
    self._writer = None
    if jax.process_index() == 0:
      from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel

      self._writer = SummaryWriter(log_dir)

  def scalars(self, step: int, values: dict[str, float]) -> None:
    if self._writer is not None:
      for k, v in values.items():
        self._writer.add_scalar(k, float(v), step)

  def text(self, step: int, tag: str, value: str) -> None:
    if self._writer is not None:
      self._writer.add_text(tag, value, step)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()

  def close(self) -> None:
    if self._writer is not None:
      self._writer.close()


def progress(total: int, initial: int, desc: str):
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel

  return tqdm(total=total, initial=initial, desc=desc, disable=jax.process_index() != 0,
              dynamic_ncols=True)
