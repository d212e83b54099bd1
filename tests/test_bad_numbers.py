"""Numbers out of range stop a launcher before any work, with `error: --FLAG ...` as the last
line and exit status 1 (no traceback, no usage dump); a run whose loss or parameters become
NaN or infinite stops there, is not marked finished, and saves neither `best/` nor `latest/`."""

import os
import subprocess
import sys

import pytest

import hf_fixtures as hf
from conftest import ED_DIR, REPO
from empathy_jax import ranges
from empathy_jax.errors import DivergedError
from empathy_jax.training import runs
from empathy_jax.training.sft import SFTConfig, train_dialogue_model

SFT = ["train_dialogue_model.py", "--dataset_dir", ED_DIR, "--model", "GODEL_TINY"]
PPO = ["train_rlhf_pipeline.py", "--dataset_dir", ED_DIR, "--model", "GODEL_TINY",
       "--reward_model_dir", "unused"]
TEST = ["test.py", "--dataset_dir", ED_DIR, "--model", "GODEL_TINY"]
CASES = [
    (SFT + ["--initial_lr", "nan"], "--initial_lr must be > 0, got nan"),
    (SFT + ["--initial_lr", "inf"], "--initial_lr must be > 0, got inf"),
    (SFT + ["--data_erasure_level", "1.5"], "--data_erasure_level must be in [0, 1]"),
    (SFT + ["--dropout_rate", "-0.1"], "--dropout_rate must be in [0, 1)"),
    (PPO + ["--kl_penalty", "-1"], "--kl_penalty must be >= 0, got -1"),
    (PPO + ["--gamma", "5"], "--gamma must be in [0, 1], got 5"),
    (PPO + ["--no_sample"], "not samples"),
    (TEST + ["--sample", "--temperature", "nan"], "--temperature must be > 0, got nan"),
    (TEST + ["--max_examples", "0"], "--max_examples must be an integer >= 1, got 0"),
    (TEST + ["--max_examples", "-3"], "--max_examples must be an integer >= 1, got -3"),
    (TEST + ["--top_p", "0"], "--top_p must be in (0, 1]"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(c[0][-2:]) for c in CASES])
def test_a_number_out_of_range_is_refused_before_any_work(argv, message, tmp_path):
  out = str(tmp_path / "out")
  done = subprocess.run([sys.executable, os.path.join(REPO, "launch", argv[0]), *argv[1:],
                         "--output_dir", out], capture_output=True, text=True, cwd=REPO,
                        timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  last = (done.stdout + done.stderr).strip().splitlines()[-1]
  assert done.returncode == 1, done.stderr[-2000:]
  assert last.startswith("error: ") and message in last, last
  assert "Traceback" not in done.stderr
  assert not os.path.exists(out)  # nothing was written


def test_the_range_table_refuses_nan_and_accepts_its_bounds():
  for name, rule in ranges.RANGES.items():
    with pytest.raises(ValueError, match=f"--{name} must be"):
      ranges.check_value(name, float("nan"))
  ranges.check_value("gamma", 0.0)
  ranges.check_value("gamma", 1.0)
  ranges.check_value("top_p", 1.0)
  ranges.check_value("length_alpha", -1.0)
  for name, bad in (("top_p", 0.0), ("dropout_rate", 1.0), ("batch_size", 2.5),
                    ("warmup_steps", -1), ("temperature", 0.0), ("val_fraction", 1.0)):
    with pytest.raises(ValueError, match=f"--{name} must be"):
      ranges.check_value(name, bad)


def test_a_diverging_run_stops_and_saves_nothing(tmp_path, short_dialogues):
  """A learning rate of 1e6 sends the loss to NaN within a few steps: the run raises
  `DivergedError` naming the step, is not marked finished, and leaves no best/ or latest/
  model (and no resumable state from after the divergence)."""
  hf.save_torch_model("dialogpt", str(tmp_path / "start"))
  cfg = SFTConfig(dataset_dir=short_dialogues, output_dir=str(tmp_path / "run"),
                  pretrained_model_dir=str(tmp_path / "start"), max_epochs=2, batch_size=8,
                  initial_lr=1e6, max_train_examples=64, max_val_examples=8, log_interval=1,
                  checkpoint_interval=2, num_val_samples=0)
  with pytest.raises(DivergedError, match="diverged at step") as e:
    train_dialogue_model(cfg)
  run_dir = e.value.run_dir
  assert runs.finished_run(str(tmp_path / "run"), cfg.identity()) is None
  assert not os.path.exists(os.path.join(run_dir, "best"))
  assert not os.path.exists(os.path.join(run_dir, "latest"))
  assert e.value.step <= 3  # found at the first logged step with a bad loss


def test_the_launcher_reports_a_diverged_run_as_an_error(tmp_path, short_dialogues):
  hf.save_torch_model("dialogpt", str(tmp_path / "start"))
  done = subprocess.run([sys.executable, os.path.join(REPO, "launch", "train_dialogue_model.py"),
                         "--dataset_dir", short_dialogues, "--pretrained_model_dir",
                         str(tmp_path / "start"), "--output_dir", str(tmp_path / "run"),
                         "--initial_lr", "1e6", "--max_epochs", "1", "--batch_size", "8",
                         "--log_interval", "1", "--num_val_samples", "0"],
                        capture_output=True, text=True, cwd=REPO, timeout=600,
                        env=dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1"))
  last = done.stderr.strip().splitlines()[-1]
  assert done.returncode == 1 and last.startswith("error: ") and "diverged at step" in last, last
  assert "finished" not in done.stdout
