"""Killing a real training process at a moment nobody chose."""

import random
import signal
import subprocess
import time


def kill_after_first_checkpoint(command, run_dir, window: float = 0.5, **popen) -> None:
  """Starts `command` and SIGKILLs it at a random moment within `window` seconds after its
  first train-state checkpoint appears under `run_dir` (so a rerun must resume, not start
  over); fails if it ends or writes none within 300 s."""
  proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          **popen)
  states = run_dir / "train_state"
  deadline = time.time() + 300
  while not (states.is_dir() and any(p.name.isdigit() for p in states.iterdir())):
    assert proc.poll() is None and time.time() < deadline, "no checkpoint was written"
    time.sleep(0.05)
  time.sleep(random.uniform(0.0, window))
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL, "the run ended before the kill"
