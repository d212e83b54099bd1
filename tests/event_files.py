"""Reads the scalars of TensorBoard event files (TFRecord framing of tensorboardX's Event
protos), so tests can check what a run logged without TensorBoard installed."""

import collections
import os
import struct

from tensorboardX.proto import event_pb2


def read_scalars(log_dir: str) -> dict[str, list[float]]:
  """{tag: values in step order} over every event file in `log_dir`."""
  out = collections.defaultdict(list)
  for name in sorted(os.listdir(log_dir)):
    if not name.startswith("events.out.tfevents"):
      continue
    with open(os.path.join(log_dir, name), "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos:pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
      pos += 12 + length + 4  # length, its crc, the record, its crc
      for value in event.summary.value:
        out[value.tag].append(value.simple_value)
  return dict(out)
