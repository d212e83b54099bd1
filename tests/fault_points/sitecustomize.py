"""Start-up hook of a test's training subprocess (this folder is put first on its PYTHONPATH
by `kills.py`): plants the SIGKILL that EMPATHY_JAX_KILL_AT names, from outside the library.

`EMPATHY_JAX_KILL_AT=checkpoint_write:2` kills the process the second time it reaches that
point. Points: step (a train step dispatched, not finished), checkpoint_write (an async
train-state write in flight), validation (validation begun), model_write (a model folder's
parameters written, its model_info.json not yet)."""

import os

if os.environ.get("EMPATHY_JAX_KILL_AT"):
  import fault_plan

  fault_plan.install(os.environ["EMPATHY_JAX_KILL_AT"])
