"""Supervised fine-tuning: learning, sharded = single device, exact resume, reload, bad flags."""

import functools
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

import hf_fixtures as hf
from conftest import ED_DIR, REPO
from empathy_jax import sharding
from empathy_jax.models.loading import load_model
from empathy_jax.training.sft import SFTConfig, train_dialogue_model, train_step
from empathy_jax.training.state import abstract_state, create_state, state_shardings


def _cfg(tmp_path, **kw):
  base = dict(dataset_dir=ED_DIR, output_dir=str(tmp_path), model="DialoGPT_TINY",
              max_epochs=2, batch_size=8, initial_lr=1e-3, max_train_examples=48,
              max_val_examples=16, log_interval=2, checkpoint_interval=100,
              num_val_samples=1, sample_max_new_tokens=5)
  base.update(kw)
  return SFTConfig(**base)


def test_loss_decreases_and_best_model_reloads(tmp_path, short_dialogues):
  hf.save_torch_model("dialogpt", str(tmp_path / "start"))  # 2 layers: quick to compile
  # Parameters and optimizer state sharded over the 8 devices (fsdp), not replicated on each.
  summary = train_dialogue_model(_cfg(tmp_path / "run", max_epochs=3, max_train_examples=64,
                                      dataset_dir=short_dialogues, model=None, initial_lr=4e-3,
                                      pretrained_model_dir=str(tmp_path / "start"),
                                      mesh=sharding.MeshConfig(1, 8, 1)))
  losses = [h["val_loss"] for h in summary["history"]]
  assert losses[-1] < losses[0] - 0.5, losses
  run_dir = summary["run_dir"]
  assert run_dir.endswith(os.path.join("tensorboard_logs", "version_0"))
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(run_dir))
  reloaded = load_model(run_dir)  # a version_N folder loads its best checkpoint
  final = jax.tree.leaves(jax.device_get(summary["params"]))
  for a, b in zip(jax.tree.leaves(reloaded.params), final):
    np.testing.assert_array_equal(a, b)  # the last epoch was the best one


@pytest.mark.parametrize("name", ["godel", "dialogpt"])
def test_sharded_step_matches_single_device(name, ed_test, tmp_path):
  # 2-layer models in each family's format: the sharding rules are per layer type, and the
  # registry's deeper tiny models only cost compile time.
  hf.save_torch_model(name, str(tmp_path / name))
  loaded = load_model(str(tmp_path / name))
  batch = hf.real_batch(loaded.fmt, ed_test, n=8, offset=30)
  arrays = {k: getattr(batch, k) for k in ("context_ids_BxC", "context_mask_BxC",
                                           "target_ids_BxT", "target_mask_BxT",
                                           "example_index_B")}
  # SGD: Adam would turn reduction-order noise in near-zero gradients (different on 8
  # devices) into whole-step differences; SGD keeps the comparison about the step itself.
  tx = optax.sgd(0.5)
  results = []
  for mesh_cfg, devices in ((sharding.MeshConfig(2, 2, 2), jax.devices()),
                            (sharding.MeshConfig(1, 1, 1), jax.devices()[:1])):
    mesh = sharding.make_mesh(mesh_cfg, devices)
    shard = state_shardings(abstract_state(loaded.model.abstract_params(), tx), mesh)
    state = create_state(loaded.params, tx, jax.random.PRNGKey(0), shard)
    bs = {k: sharding.batch_sharding(mesh, v.ndim) for k, v in arrays.items()}
    step = jax.jit(functools.partial(train_step, model=loaded.model, tx=tx, grad_accum=2),
                   in_shardings=(shard, bs), out_shardings=(shard, sharding.replicated(mesh)),
                   donate_argnums=0)
    for _ in range(2):
      state, metrics = step(state, {k: jax.device_put(v, bs[k]) for k, v in arrays.items()})
    if mesh_cfg.tensor == 2:
      emb = state.params["wte" if name == "dialogpt" else "shared"]["embedding"]
      assert emb.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")
    results.append((jax.device_get(state.params), float(metrics["loss"])))
  (sharded, loss_a), (single, loss_b) = results
  assert abs(loss_a - loss_b) < 1e-5
  # Two SGD steps of lr 0.5: the 2 x 2 x 2 mesh sums gradients in another order, ~1e-6
  # of the largest summands; bound the parameters at 1e-3 of the largest step taken.
  start = jax.tree.leaves(loaded.params)
  step = max(float(np.abs(a - b).max()) for a, b in zip(jax.tree.leaves(single), start))
  for a, b in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
    np.testing.assert_allclose(a, b, atol=1e-3 * step, rtol=0)


def test_bad_configs_give_clear_errors(tmp_path):
  with pytest.raises(ValueError, match="exactly one of --model"):
    _cfg(tmp_path, model=None)
  with pytest.raises(ValueError, match="exactly one of --model"):
    _cfg(tmp_path, pretrained_model_dir="x")
  with pytest.raises(ValueError, match="does not exist"):
    _cfg(tmp_path, dataset_dir=str(tmp_path / "missing"))
  with pytest.raises(ValueError, match="divisible by --grad_accum"):
    _cfg(tmp_path, grad_accum=3)
  with pytest.raises(ValueError, match="warmup"):
    _cfg(tmp_path, warmup_steps=5)
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "train_dialogue_model.py"),
                        "--dataset_dir", ED_DIR, "--output_dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=REPO, timeout=900)
  assert out.returncode != 0 and "exactly one of --model" in out.stderr
  out = subprocess.run([sys.executable, os.path.join(REPO, "launch", "train_dialogue_model.py"),
                        "--dataset_dir", ED_DIR, "--output_dir", str(tmp_path), "--model",
                        "GODEL_HUGE", "--max_epochs", "1"], capture_output=True, text=True,
                       cwd=REPO, timeout=900)
  assert out.returncode != 0 and "known models" in out.stderr
