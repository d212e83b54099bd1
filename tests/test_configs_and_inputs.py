"""Experiment configs (`--config configs/X.py[:tiny]`) and the checks every launcher makes on
its inputs before any heavy work."""

import dataclasses
import glob
import json
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from conftest import ED_DIR, REPO
from empathy_jax.data.classifier_data import TASKS as CLASSIFIER_TASKS
from empathy_jax.errors import CheckpointError, DatasetError
from empathy_jax.evaluation.suite import ScoreConfig
from empathy_jax.evaluation.testing import TestConfig, run_test
from empathy_jax.training import runs
from empathy_jax.training.dpo import DPOConfig
from empathy_jax.training.grpo import GRPOConfig
from empathy_jax.training.ppo.trainer import PPORunConfig
from empathy_jax.training.sft import SFTConfig, train_dialogue_model

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


def _load(path_and_variant):
  holder = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=holder)
  holder(["prog", f"--config={path_and_variant}"])
  return holder.config


def test_one_config_per_run_of_the_original_table():
  names = {os.path.basename(p) for p in CONFIGS}
  assert {"sft_godel_ed.py", "sft_dialogpt_ed.py", "sft_blenderbot_ed.py", "reward_model.py",
          "ppo_godel_ed.py", "eval_godel_ed.py"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_every_config_and_its_tiny_twin_parse(path, monkeypatch):
  monkeypatch.chdir(REPO)
  full, tiny = _load(path), _load(f"{path}:tiny")
  if "sft" in full:  # the pipeline's: a config per stage
    stages = {"sft", "reward", "ppo", "dpo", "grpo", "test"}
    assert set(full.keys()) == set(tiny.keys()) == stages | {"classifiers"}
    for stage in stages:
      assert os.path.isdir(full[stage].dataset_dir) and os.path.isdir(tiny[stage].dataset_dir)
    # The metric classifiers: all five at the full scale (their data shipped), none in the
    # tiny loop.
    assert sorted(full.classifiers) == sorted(CLASSIFIER_TASKS) and not tiny.classifiers
    for fields in full.classifiers.values():
      assert os.path.isdir(fields.dataset_dir)
    for stage in ("sft", "reward"):
      assert not full[stage].model.endswith("_TINY") and tiny[stage].model.endswith("_TINY")
    full, tiny = full.sft, tiny.sft  # the SFT stage: the checks of an SFT config below
  else:
    assert os.path.isdir(full.dataset_dir)
  if os.path.basename(path) == "godel_small_ed.py":  # trained from scratch: GODEL_TINY's
    # random initialisation is the run's real start (the registry entry's architecture)
    assert full.model == tiny.model == "GODEL_TINY"
    # ... and its second stage continues from the shipped weights with a fresh optimizer.
    second = _load(f"{path}:continue")
    assert (second.model, second.max_epochs, second.initial_lr) == ("GODEL_SMALL_ED", 1, 1e-3)
    SFTConfig(**second.to_dict(), output_dir="unused")  # builds and validates
  elif "model" in full:  # the run's real model, and a tiny one for its CPU twin
    assert not full.model.endswith("_TINY") and tiny.model.endswith("_TINY")
  if os.path.basename(path).startswith(("dpo_", "grpo_")):  # their configs build and validate
    cls = DPOConfig if os.path.basename(path).startswith("dpo_") else GRPOConfig
    for cfg in (full, tiny):
      cls(**{**cfg.to_dict(), "output_dir": "unused", "reward_model_dir": "rm"}
          if cls is GRPOConfig else {**cfg.to_dict(), "output_dir": "unused"})
  if os.path.basename(path).startswith(("sft_", "pipeline")):
    known = {f.name for f in dataclasses.fields(SFTConfig)}
    for cfg in (full, tiny):
      assert set(cfg.keys()) <= known, set(cfg.keys()) - known
      SFTConfig(**cfg.to_dict(), output_dir="unused")  # builds and validates
    # The original's train_dialogue_model settings.
    assert (full.max_epochs, full.batch_size, full.initial_lr, full.data_erasure_level) == (
        10, 8, 1e-5, 0.3)
  with pytest.raises(flags.IllegalFlagValueError, match="unknown config variant 'huge'"):
    _load(f"{path}:huge")


def test_reward_and_ppo_configs_hold_the_originals_hyperparameters():
  reward = _load(os.path.join(REPO, "configs", "reward_model.py"))
  assert (reward.max_epochs, reward.initial_lr, reward.batch_size, reward.dropout) == (
      1, 1e-5, 1, 0.6)
  ppo = _load(os.path.join(REPO, "configs", "ppo_godel_ed.py"))
  assert {k: ppo[k] for k in ("max_epochs", "batch_size", "initial_lr", "data_erasure_level",
                              "max_new_tokens", "clip_epsilon", "kl_penalty", "gamma", "lam",
                              "vf_coeff", "entropy_coeff")} == dict(
      max_epochs=10, batch_size=8, initial_lr=1e-5, data_erasure_level=0.3, max_new_tokens=100,
      clip_epsilon=0.2, kl_penalty=0.0, gamma=0.99, lam=0.95, vf_coeff=1.0, entropy_coeff=0.01)
  original = _load(os.path.join(REPO, "configs", "ppo_godel_ed.py") + ":original")
  assert original.to_dict() == {**ppo.to_dict(), "recipe": "original", "top_k": 50, "top_p": 0.9}
  cfg = PPORunConfig(**{**original.to_dict(), "output_dir": "unused",
                        "reward_model_dir": "unused", "model": "GODEL_TINY"})
  assert (cfg.recipe, cfg.ratio_against, cfg.ppo_epochs, cfg.value_head_init) == (
      "original", "reference", 1, "torch")
  evaluation = _load(os.path.join(REPO, "configs", "eval_godel_ed.py"))
  assert (evaluation.batch_size, evaluation.data_erasure_level, evaluation.metric_n_grams) == (
      32, 1.0, 4)


def test_launcher_takes_config_then_fields_then_flags(tmp_path, short_dialogues):
  out = subprocess.run(
      [sys.executable, os.path.join(REPO, "launch", "train_dialogue_model.py"),
       "--config", "configs/sft_dialogpt_ed.py:tiny", "--config.batch_size=8",
       "--dataset_dir", short_dialogues, "--output_dir", str(tmp_path), "--max_epochs", "1",
       "--max_train_examples", "16", "--max_val_examples", "8", "--num_val_samples", "0"],
      capture_output=True, text=True, cwd=REPO,
      env=dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1"), timeout=600)
  assert out.returncode == 0, out.stderr[-3000:]
  hparams = json.load(open(tmp_path / "tensorboard_logs" / "version_0" / "hparams.json"))
  assert hparams["model"] == "DialoGPT_TINY"  # the tiny config's field
  assert hparams["initial_lr"] == 5e-4  # the tiny config's field
  assert hparams["batch_size"] == 8  # --config.batch_size overrides the config
  assert hparams["max_epochs"] == 1 and hparams["max_train_examples"] == 16  # flags win
  assert hparams["dataset_dir"] == short_dialogues and hparams["steps_per_epoch"] == 2


def test_unknown_config_field_is_named(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("import ml_collections\n\ndef get_config():\n"
                 "  return ml_collections.ConfigDict({'model': 'GODEL_TINY', 'batchsize': 4})\n")
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "train_dialogue_model.py"),
                        "--config", str(bad), "--dataset_dir", ED_DIR, "--output_dir",
                        str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=900)
  assert out.returncode == 1 and "unknown field(s) batchsize" in out.stderr


# -- inputs checked before heavy work ------------------------------------------------------------


@pytest.fixture
def no_model_loading(monkeypatch):
  """Fails the test if anything gets as far as loading a model."""
  def refuse(*args, **kwargs):
    raise AssertionError("a model was loaded before the inputs were checked")
  monkeypatch.setattr("empathy_jax.training.core.load_model", refuse)
  monkeypatch.setattr("empathy_jax.evaluation.testing.load_model", refuse)


def _sft(tmp_path, **kw):
  return SFTConfig(**{"dataset_dir": ED_DIR, "output_dir": str(tmp_path / "out"),
                      "model": "GODEL_TINY", **kw})


def test_sft_reports_a_broken_dataset_with_file_and_index(tmp_path, no_model_loading):
  for split in ("train", "val"):
    (tmp_path / "data" / split).mkdir(parents=True)
    (tmp_path / "data" / split / "contexts.json").write_text(json.dumps([["hi"], "oops"]))
    (tmp_path / "data" / split / "targets.json").write_text(json.dumps(["a", "b"]))
  with pytest.raises(DatasetError, match=r"val/contexts\.json\[1\]"):
    train_dialogue_model(_sft(tmp_path, dataset_dir=str(tmp_path / "data")))


def test_sft_reports_a_folder_that_holds_no_model(tmp_path, no_model_loading):
  (tmp_path / "empty").mkdir()
  with pytest.raises(CheckpointError, match="not a Hugging Face directory"):
    train_dialogue_model(_sft(tmp_path, model=None, pretrained_model_dir=str(tmp_path / "empty")))
  (tmp_path / "ours").mkdir()
  (tmp_path / "ours" / "model_info.json").write_text("{not json")
  with pytest.raises(CheckpointError, match=r"model_info\.json: not valid JSON"):
    train_dialogue_model(_sft(tmp_path, model=None, pretrained_model_dir=str(tmp_path / "ours")))


def test_sft_reports_an_unwritable_output_folder(tmp_path, no_model_loading):
  (tmp_path / "a_file").write_text("")
  with pytest.raises(CheckpointError, match="cannot write there"):
    train_dialogue_model(_sft(tmp_path, output_dir=str(tmp_path / "a_file" / "out")))


def test_a_corrupt_run_folder_is_reported_not_replaced(tmp_path):
  run_dir = tmp_path / "tensorboard_logs" / "version_0"
  run_dir.mkdir(parents=True)
  (run_dir / runs.RUN_CONFIG).write_text("{truncated")
  with pytest.raises(CheckpointError, match=r"version_0/run_config\.json: unreadable"):
    runs.select_run(str(tmp_path), {"a": 1})
  assert runs.versions(str(tmp_path)) == [0]  # no version_1 started behind the user's back
  (run_dir / runs.RUN_CONFIG).unlink()  # a folder a kill left empty is taken over
  assert runs.select_run(str(tmp_path), {"a": 1}) == (str(run_dir), False)
  assert runs.select_run(str(tmp_path), {"a": 1}) == (str(run_dir), True)


def test_test_py_refuses_a_bad_reward_model_and_missing_classifiers_first(tmp_path,
                                                                      no_model_loading):
  base = dict(dataset_dir=ED_DIR, model="GODEL_TINY", output_dir=str(tmp_path / "o"))
  with pytest.raises(CheckpointError, match=r"--reward_model_dir .*: not a reward model"):
    run_test(TestConfig(**base, scores=ScoreConfig(reward_model_dir=str(tmp_path))))
  with pytest.raises(CheckpointError, match="emotion classifier: .* is not a directory"):
    run_test(TestConfig(**base, scores=ScoreConfig(emo_classifier_dir=str(tmp_path / "no"))))
  (tmp_path / "epi").mkdir()
  with pytest.raises(CheckpointError, match=r"EPITOME: .*finetuned_IP\.pth is missing"):
    run_test(TestConfig(**base, scores=ScoreConfig(epitome_dir=str(tmp_path / "epi"))))
  assert not os.path.exists(tmp_path / "o" / "test_metrics.json")


def test_launchers_print_the_problem_and_exit_1(tmp_path):
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "test.py"),
                        "--dataset_dir", ED_DIR, "--model", "GODEL_TINY",
                        "--reward_model_dir", str(tmp_path), "--output_dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=300)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines()[-1].startswith("error: --reward_model_dir")
  assert "Traceback" not in out.stderr
