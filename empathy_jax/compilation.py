"""What a run compiles: JAX's persistent compilation cache on by default for the launchers (a
second run of the same job loads its programs instead of compiling them), and a count of the
programs a run compiled or loaded and the seconds that took, for users to see."""

from __future__ import annotations

import collections
import os
import threading

import jax

_DURATIONS = {"/jax/core/compile/backend_compile_duration": "compile",
              "/jax/core/compile/jaxpr_trace_duration": "trace"}
_stats: collections.Counter = collections.Counter()
_listening = False


def default_cache_dir() -> str:
  """$JAX_COMPILATION_CACHE_DIR when set, else a folder under the user's cache."""
  if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    return os.environ["JAX_COMPILATION_CACHE_DIR"]
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "empathy_jax", "xla")


def enable_cache(path: str | None) -> None:
  """Persists compiled programs under `path` ("" or None: off); call before compiling."""
  if path:
    jax.config.update("jax_compilation_cache_dir", path)
    # Every program: on CPU many compile in well under JAX's default threshold of 1 s, and
    # together they are what a user waits for.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  _listen()


def _listen() -> None:
  global _listening
  if _listening:
    return
  _listening = True

  def on_duration(event, seconds, **_):
    if event in _DURATIONS:
      _stats[_DURATIONS[event] + "_seconds"] += seconds
      _stats[_DURATIONS[event] + "s"] += 1

  def on_event(event, **_):
    if event == "/jax/compilation_cache/cache_hits":
      _stats["cache_hits"] += 1

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  jax.monitoring.register_event_listener(on_event)


def summary() -> str:
  """One line: programs compiled (of which loaded from the persistent cache) and seconds."""
  return (f"compilation: {_stats['compiles']} programs in {_stats['compile_seconds']:.1f} s "
          f"({_stats['cache_hits']} loaded from the persistent cache), tracing "
          f"{_stats['trace_seconds']:.1f} s")


class CompileAhead:
  """Compiles a run's programs in a background thread, in the order the run will need them,
  so that compiling the next shape overlaps the work on the current one.

  `lower(key)` returns a `jax.stages.Lowered` (e.g. `jitted.lower(...)` on abstract arrays);
  `get(key)` blocks until that program is compiled (or loaded from the persistent cache) and
  returns it. Keys not submitted are compiled on demand."""

  def __init__(self, lower, keys):
    import concurrent.futures  # pylint: disable=import-outside-toplevel

    self._lower = lower
    self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="compile-ahead")
    self._futures = {}
    self._lock = threading.Lock()
    for key in keys:
      if key not in self._futures:
        self._futures[key] = self._pool.submit(self._compile, key)

  def _compile(self, key):
    return self._lower(key).compile()

  def get(self, key):
    with self._lock:  # callers may be several threads
      if key not in self._futures:
        self._futures[key] = self._pool.submit(self._compile, key)
      future = self._futures[key]
    return future.result()

  def close(self):
    self._pool.shutdown(wait=False, cancel_futures=True)
