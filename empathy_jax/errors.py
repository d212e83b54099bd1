"""Errors that name the file, the index and the fault, so users can fix their data."""

from __future__ import annotations

import dataclasses
import sys


@dataclasses.dataclass(frozen=True)
class Problem:
  """One fault found in a data file: where it is and what is wrong."""

  file: str
  index: int | None
  reason: str

  def __str__(self) -> str:
    where = self.file if self.index is None else f"{self.file}[{self.index}]"
    return f"{where}: {self.reason}"


class DatasetError(ValueError):
  """Raised when a dataset folder is malformed; lists every problem found."""

  def __init__(self, problems: list[Problem]):
    self.problems = list(problems)
    shown = [str(p) for p in self.problems[:20]]
    more = len(self.problems) - 20
    if more > 0:
      shown.append(f"... and {more} more")
    # The message ends with the first problem, so that `error: <file>: <reason>` is the last
    # line a launcher prints; the others come before it.
    others = shown[1:]
    tail = f" (and {len(self.problems) - 1} more, listed above)" if others else ""
    lead = "".join(f"  {line}\n" for line in others)
    super().__init__(f"{lead}{shown[0] if shown else 'a problem in the dataset'}{tail}")


class CheckpointError(ValueError):
  """Raised when weights or checkpoint files do not match the model."""


class DivergedError(RuntimeError):
  """Raised when training produced a NaN or infinite loss, validation value or parameter: the
  run stops there, is not marked finished, and `best/`, `latest/` and the resumable state keep
  what they held before."""

  def __init__(self, run_dir: str, step: int, what: str):
    self.run_dir, self.step = run_dir, step
    super().__init__(f"{run_dir}: training diverged at step {step}: {what}; nothing was saved "
                     f"from it (lower the learning rate, or check the data)")


class OutputExistsError(ValueError):
  """Raised before any work when the output folder holds what another run wrote; the message
  names the folder and the flag that allows replacing it."""


def parse_flags(argv: list[str]):
  """absl's parser for `app.run(flags_parser=...)`: an unknown or malformed flag ends the run
  with `error:` as the last line (no usage dump)."""
  from absl import flags  # pylint: disable=import-outside-toplevel

  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    fail(str(e))


def fail(message: str) -> None:
  """Ends a launcher on bad input: the message alone, exit status 1. A message of several lines
  ends with its headline, which is printed last as `error: ...`."""
  *details, headline = str(message).split("\n")
  for line in details:
    print(line, file=sys.stderr)
  print(f"error: {headline}", file=sys.stderr)
  sys.exit(1)
