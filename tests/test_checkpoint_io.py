"""Export round trips, the original's Lightning checkpoints, vocabulary resizing, clear errors."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import hf_fixtures as hf
from conftest import REPO
from empathy_jax.errors import CheckpointError
from empathy_jax.models.loading import export_hf, load_model


def _ours(loaded, batch):
  out = loaded.model.forward(loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
                             batch.target_ids_BxT, batch.target_mask_BxT)
  return np.asarray(out.logits_BxTxV), np.asarray(out.loss_mask_BxT).astype(bool)


@pytest.mark.parametrize("name", ["GODEL_TINY", "DialoGPT_TINY", "BlenderBot_TINY"])
def test_export_round_trip_through_transformers(name, tmp_path, ed_test):
  import transformers

  loaded = load_model(name)
  export_hf(loaded, str(tmp_path / "hf"))
  torch_model = transformers.AutoModelForSeq2SeqLM if loaded.model.is_encoder_decoder else \
      transformers.AutoModelForCausalLM
  model = torch_model.from_pretrained(str(tmp_path / "hf")).eval()
  batch = hf.real_batch(loaded.fmt, ed_test, n=4)
  ours, mask = _ours(loaded, batch)
  theirs, _ = hf.torch_logits(model, batch, loaded.model.is_encoder_decoder)
  np.testing.assert_allclose(ours[mask], theirs[mask], atol=1e-4, rtol=0)
  # ... and back into Flax, identical.
  again = load_model(str(tmp_path / "hf"))
  np.testing.assert_array_equal(_ours(again, batch)[0][mask], ours[mask])


@pytest.mark.parametrize("name, cls", [("GODEL_TINY", "GODEL"), ("DialoGPT_TINY", "DialoGPT")])
def test_original_lightning_checkpoint_loads_and_matches(name, cls, tmp_path, ed_test):
  model, fmt = hf.registry_torch_model(name)
  run = tmp_path / "tensorboard_logs" / "version_0"
  (run / "checkpoints").mkdir(parents=True)
  hf.write_original_ckpt(model, str(run / "checkpoints" / "epoch=3-step=100.ckpt"), cls, "tiny")
  loaded = load_model(str(run))  # a run folder: first *.ckpt under checkpoints/
  assert loaded.model.family == fmt.family and loaded.fmt.vocab_size == fmt.vocab_size
  batch = hf.real_batch(loaded.fmt, ed_test, n=4)
  ours, mask = _ours(loaded, batch)
  theirs, _ = hf.torch_logits(model, batch, loaded.model.is_encoder_decoder)
  np.testing.assert_allclose(ours[mask], theirs[mask], atol=1e-4, rtol=0)


def test_vocabulary_is_resized_for_the_added_pad_token(tmp_path, ed_test):
  model, fmt = hf.save_torch_model("dialogpt", str(tmp_path), vocab_size=50257)
  loaded = load_model(str(tmp_path))
  wte = loaded.params["wte"]["embedding"]
  assert wte.shape[0] == 50258
  np.testing.assert_allclose(wte[-1], model.transformer.wte.weight.detach().numpy().mean(0),
                             atol=1e-6)
  batch = hf.real_batch(fmt, ed_test, n=3)
  # The original model has no row for <PAD>: give it another id where the mask hides it.
  batch = dataclasses.replace(
      batch, context_ids_BxC=np.where(batch.context_mask_BxC == 1, batch.context_ids_BxC, 0),
      target_ids_BxT=np.where(batch.target_mask_BxT == 1, batch.target_ids_BxT, 0))
  ours, mask = _ours(loaded, batch)
  theirs, _ = hf.torch_logits(model, batch, False)
  np.testing.assert_allclose(ours[..., :50257][mask], theirs[mask], atol=1e-4, rtol=0)


def test_convert_launcher_between_three_formats(tmp_path, ed_test):
  def convert(src, dst, to):
    out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "convert_checkpoint.py"),
                          "--input", src, "--output", dst, "--to", to], capture_output=True,
                         text=True, cwd=REPO, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]

  from empathy_jax.models.loading import convert_checkpoint

  # Two conversions in-process (the library function the launcher calls), the last one
  # through the launcher itself.
  convert_checkpoint("BlenderBot_TINY", str(tmp_path / "ours"), "ours")
  convert_checkpoint(str(tmp_path / "ours"), str(tmp_path / "run"), "ckpt")
  convert(str(tmp_path / "run"), str(tmp_path / "hf"), "hf")
  a, b = load_model(str(tmp_path / "ours")), load_model(str(tmp_path / "hf"))
  batch = hf.real_batch(a.fmt, ed_test, n=2)
  np.testing.assert_array_equal(_ours(a, batch)[0], _ours(b, batch)[0])
  with open(tmp_path / "hf" / "config.json") as f:
    assert json.load(f)["model_type"] == "blenderbot"


def test_clear_errors(tmp_path):
  from safetensors.numpy import load_file, save_file

  hf.save_torch_model("godel", str(tmp_path / "m"), with_tokenizer=False)
  weights_path = str(tmp_path / "m" / "model.safetensors")
  state = load_file(weights_path)
  broken = dict(state)
  broken.pop("encoder.final_layer_norm.weight")
  broken["encoder.extra_thing.weight"] = np.zeros(3, np.float32)
  broken["decoder.final_layer_norm.weight"] = np.zeros(7, np.float32)
  save_file(broken, weights_path)
  with pytest.raises(CheckpointError) as e:
    load_model(str(tmp_path / "m"))
  msg = str(e.value)
  assert "missing weights (1): encoder.final_layer_norm.weight" in msg
  assert "unexpected weights (1): encoder.extra_thing.weight" in msg
  assert "decoder.final_layer_norm.weight: expected (32,)" in msg and "found (7,)" in msg

  with open(tmp_path / "m" / "config.json") as f:
    cfg = json.load(f)
  cfg["model_type"] = "llama"
  with open(tmp_path / "m" / "config.json", "w") as f:
    json.dump(cfg, f)
  with pytest.raises(ValueError, match="unknown architecture model_type='llama'"):
    load_model(str(tmp_path / "m"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(CheckpointError, match="not a Hugging Face directory"):
    load_model(str(tmp_path / "empty"))


def test_a_run_root_loads_its_newest_version_with_a_model(tmp_path, capfd):
  """`--pretrained_model_dir runs/x` (a run's root) loads the best model of its newest
  `tensorboard_logs/version_N` that has one, and says which on stderr."""
  from empathy_jax.models import model_dir

  root = tmp_path / "run"
  older, newer = load_model("DialoGPT_TINY", seed=1), load_model("DialoGPT_TINY", seed=2)
  model_dir.save(older, str(root / "tensorboard_logs" / "version_2" / "best"))
  model_dir.save(newer, str(root / "tensorboard_logs" / "version_10" / "best"))
  (root / "tensorboard_logs" / "version_11").mkdir()  # interrupted before a best model
  loaded = load_model(str(root))
  for a, b in zip(jax.tree.leaves(loaded.params), jax.tree.leaves(newer.params)):
    np.testing.assert_array_equal(a, b)
  assert "version_10" in capfd.readouterr().err


@pytest.mark.parametrize("change,reason", [
    (lambda info: [], "not a JSON object"),
    (lambda info: {**info, "family": "llama"}, "family 'llama' is not one of"),
    (lambda info: {k: v for k, v in info.items() if k != "hf_config"}, "no hf_config"),
    (lambda info: {**info, "max_length": -4}, "max_length must be a positive integer"),
])
def test_a_broken_model_info_is_an_error_naming_the_file(change, reason, tmp_path):
  from empathy_jax.models import model_dir

  model_dir.save(load_model("DialoGPT_TINY"), str(tmp_path / "m"))
  path = tmp_path / "m" / model_dir.INFO
  path.write_text(json.dumps(change(json.loads(path.read_text()))))
  with pytest.raises(CheckpointError, match=reason) as e:
    load_model(str(tmp_path / "m"))
  assert str(path) in str(e.value)
