"""Named points where tests SIGKILL a real training process (`EMPATHY_JAX_KILL_AT`).

`EMPATHY_JAX_KILL_AT=checkpoint_write:2` kills the process the second time it reaches
`reached("checkpoint_write")`. Unset (always, outside tests), `reached` does nothing.
Points: step (a train step dispatched, not finished), checkpoint_write (an async train-state
write in flight), validation (inside the validation loop), model_write (a model folder
half written).
"""

from __future__ import annotations

import collections
import os
import signal

_ENV = "EMPATHY_JAX_KILL_AT"
_counts: collections.Counter = collections.Counter()


def reached(point: str) -> None:
  spec = os.environ.get(_ENV)
  if not spec:
    return
  name, _, nth = spec.partition(":")
  if name != point:
    return
  _counts[point] += 1
  if _counts[point] == int(nth or 1):
    os.kill(os.getpid(), signal.SIGKILL)
