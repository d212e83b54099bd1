"""TensorBoard event files (tensorboardX) and a progress bar; only process 0 writes."""

from __future__ import annotations

import collections
import os
import struct

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


def read_scalars(log_dir: str) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} from the TensorBoard event files in `log_dir` (the TFRecord
  framing of tensorboardX's Event protos), for reports and tests without TensorBoard."""
  from tensorboardX.proto import event_pb2  # pylint: disable=import-outside-toplevel

  out: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)
  for name in sorted(os.listdir(log_dir)):
    if not name.startswith("events.out.tfevents"):
      continue
    with open(os.path.join(log_dir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      if pos + 12 + length > len(data):  # a record cut by a kill
        break
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4  # length, its crc, the record, its crc
      for value in event.summary.value:
        out[value.tag].append((int(event.step), float(value.simple_value)))
  return dict(out)
