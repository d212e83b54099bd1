"""Kill safety, for real: a training process SIGKILLed at several points (mid-step, during an
async checkpoint write, during validation, while writing best/, and at a random moment), the
same command rerun each time, ends with the parameters of an uninterrupted run, bit for bit."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np

import hf_fixtures as hf
from conftest import REPO
from kills import one_device_env, run_one_device
from empathy_jax.models import model_dir
from empathy_jax.models.loading import load_model

# 48 examples / batch 8: 6 steps an epoch; checkpoints every 2 steps divide the epoch (the
# periodic save of step 6 coincides with the end-of-epoch one, which crashed orbax before).
ARGS = ["--max_epochs", "2",
        "--batch_size", "8", "--max_train_examples", "48", "--max_val_examples", "24",
        "--checkpoint_interval", "2", "--log_interval", "2", "--num_val_samples", "1",
        "--sample_max_new_tokens", "4", "--initial_lr", "1e-3"]
LAUNCHER = os.path.join(REPO, "launch", "train_dialogue_model.py")


def _command(data, out_dir):
  """`data`: the dataset and start-model flags."""
  return [sys.executable, LAUNCHER, *ARGS, *data, "--output_dir", str(out_dir)]


# One device: these tests are about kills, not sharding (test_multihost covers 8 devices).
_env = one_device_env


def _run(data, out_dir, kill_at=None):
  return run_one_device(_command(data, out_dir), REPO, kill_at)


def _resumed_from(stderr):
  m = re.search(r"resuming .* from step (\d+) \(epoch (\d+), batch (\d+)\)", stderr)
  return None if m is None else tuple(int(x) for x in m.groups())


def _params(path):
  return jax.tree.leaves(model_dir.restore_tree(os.path.join(path, "params")))


def test_sigkill_anywhere_then_rerun_equals_uninterrupted(tmp_path, short_dialogues):
  # A 2-layer GPT-2 in DialoGPT's format: eight runs here, and more layers only cost compiles.
  hf.save_torch_model("dialogpt", str(tmp_path / "start"))
  data = ["--dataset_dir", short_dialogues, "--pretrained_model_dir", str(tmp_path / "start")]
  whole = _run(data, tmp_path / "whole")
  assert whole.returncode == 0, whole.stderr[-3000:]
  out = tmp_path / "killed"
  run_dir = out / "tensorboard_logs" / "version_0"
  resumes = []

  def killed(kill_at):
    proc = _run(data, out, kill_at)
    assert proc.returncode == -signal.SIGKILL, (kill_at, proc.returncode, proc.stderr[-3000:])
    resumes.append(_resumed_from(proc.stderr))

  # Epoch 1: periodic saves at steps 2 and 4, then killed in validation: the rerun resumes
  # from a periodic checkpoint older than the last step taken (6).
  killed("validation:1")
  killed("model_write:1")  # first best/ half written: no best/ may appear
  assert resumes[1] is not None and resumes[1][0] in (2, 4) and resumes[1][2] > 0, resumes
  assert not os.path.exists(run_dir / "best") and os.path.exists(run_dir / "best.tmp")
  assert not os.path.exists(run_dir / "best.tmp" / model_dir.INFO)
  # Reaches the end of epoch 1 (best/, checkpoint of step 6), killed writing step 8's state.
  killed("checkpoint_write:2")
  killed("step:2")  # resumed at the epoch boundary, killed with a step in flight
  assert resumes[3] == (6, 2, 0), resumes
  best_epoch_1 = _params(run_dir / "best")
  assert json.load(open(run_dir / "best" / model_dir.INFO))["metadata"]["epoch"] == 1
  killed("model_write:1")  # the end of epoch 2 improves: killed while replacing best/
  again = load_model(str(run_dir))  # the old best/ is still (or again) a whole model
  for a, b in zip(jax.tree.leaves(again.params), best_epoch_1):
    np.testing.assert_array_equal(a, b)

  # A kill at a moment nobody chose: somewhere in the first second after the run resumed.
  proc = subprocess.Popen(_command(data, out), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, cwd=REPO, env=_env())
  for line in proc.stderr:
    if _resumed_from(line):
      break
  time.sleep(random.uniform(0.0, 1.0))
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL
  last = _run(data, out)
  assert last.returncode == 0, last.stderr[-3000:]
  assert _resumed_from(last.stderr) is not None
  # JAX's persistent compilation cache (the launcher's default, shared by these runs): the
  # last run compiles nothing the earlier runs had compiled.
  m = re.search(r"compilation: (\d+) programs in [\d.]+ s \((\d+) loaded", last.stderr)
  assert m and int(m.group(1)) > 0 and m.group(1) == m.group(2), m and m.group(0)
  assert os.path.exists(run_dir / "FINISHED")
  assert not os.path.exists(run_dir / "best.tmp") and not os.path.exists(run_dir / "best.old")

  whole_dir = tmp_path / "whole" / "tensorboard_logs" / "version_0"
  for folder in ("latest", "best"):
    for a, b in zip(_params(whole_dir / folder), _params(run_dir / folder)):
      np.testing.assert_array_equal(a, b)  # bit-identical on CPU
  history = lambda d: [h["val_loss"] for h in json.load(open(d / "FINISHED"))["history"]]
  assert history(whole_dir) == history(run_dir)
