"""Killing a real training process at a moment nobody chose."""

import os
import random
import signal
import subprocess
import time


FAULT_POINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_points")


def with_fault(env: dict, kill_at=None) -> dict:
  """`env` for a subprocess that SIGKILLs itself at the fault point `kill_at` when given
  (fault_points/sitecustomize.py plants it; the library has no fault points of its own)."""
  env = dict(env)
  env.pop("EMPATHY_JAX_KILL_AT", None)
  if kill_at:
    env["EMPATHY_JAX_KILL_AT"] = kill_at
    env["PYTHONPATH"] = os.pathsep.join(p for p in (FAULT_POINTS, env.get("PYTHONPATH")) if p)
  return env


def one_device_env(kill_at=None) -> dict:
  """This process's environment for a training subprocess on one CPU device (a test about
  kills, not sharding), killed at the fault point `kill_at` when given."""
  return with_fault(dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1"),
                    kill_at)


def run_one_device(command, cwd, kill_at=None) -> subprocess.CompletedProcess:
  """Runs a training command to its end (or its planned fault) on one device, output kept."""
  return subprocess.run(command, capture_output=True, text=True, cwd=cwd,
                        env=one_device_env(kill_at), timeout=600)


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
