"""empathy-jax checkpoint directories (orbax), readable by every launcher.

A *model directory* holds one model, ready to load:
  model_info.json   family, transformers config, max length, generation defaults, extra heads
  tokenizer/        the tokenizer files (with `<PAD>`), so the directory is self-contained
  params/           orbax checkpoint of the parameters (unscanned layout, float32)
  extra/            optional orbax checkpoint of extra parameter trees (reward / value heads)

A *run directory* (`OUT/tensorboard_logs/version_N/`) holds `best/` and `latest/` model
directories plus the resumable train state (see `training`); loading a run directory loads
its `best/` model.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

import jax
import numpy as np

from empathy_jax.errors import CheckpointError

FORMAT = "empathy-jax/model-v1"
INFO = "model_info.json"


def _checkpointer():
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  return ocp.StandardCheckpointer()


def save_tree(path: str, tree) -> None:
  """Writes a pytree with orbax, atomically (orbax writes to a temporary dir then renames)."""
  path = os.path.abspath(path)
  if os.path.exists(path):
    shutil.rmtree(path)
  ckptr = _checkpointer()
  ckptr.save(path, tree)
  ckptr.wait_until_finished()


def restore_tree(path: str, target=None):
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"{path}: checkpoint folder is missing")
  ckptr = _checkpointer()
  if target is None:
    return ckptr.restore(path)
  return ckptr.restore(path, target)


def model_dir_of(path: str) -> str | None:
  """The model directory a path stands for: itself, or a run directory's `best/`."""
  for candidate in (path, os.path.join(path, "best")):
    if os.path.isfile(os.path.join(candidate, INFO)):
      return candidate
  return None


def is_our_checkpoint(path: str) -> bool:
  return model_dir_of(path) is not None


def save_model_dir(loaded, path: str, extra: dict[str, Any] | None = None,
                   metadata: dict[str, Any] | None = None) -> None:
  """Saves a `LoadedModel` (and optional extra parameter trees) as a model directory."""
  from empathy_jax.models.loading import unscanned_numpy_params  # pylint: disable=import-outside-toplevel

  tmp = path.rstrip("/") + ".tmp"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  cfg = loaded.model.cfg
  info = {"format": FORMAT, "family": cfg.family, "hf_config": cfg.hf_dict(),
          "max_length": loaded.fmt.max_length, "generation_config": loaded.generation_config,
          "name": loaded.name, "extra": sorted(extra or {}), "metadata": metadata or {}}
  with open(os.path.join(tmp, INFO), "w") as f:
    json.dump(info, f, indent=2, sort_keys=True)
  loaded.tokenizer.save_pretrained(os.path.join(tmp, "tokenizer"))
  save_tree(os.path.join(tmp, "params"), unscanned_numpy_params(loaded))
  if extra:
    save_tree(os.path.join(tmp, "extra"), jax.tree.map(np.asarray, jax.device_get(extra)))
  shutil.rmtree(path, ignore_errors=True)
  os.replace(tmp, path)


def read_info(path: str) -> dict:
  model_dir = model_dir_of(path)
  if model_dir is None:
    raise CheckpointError(f"{path}: no {INFO} (not an empathy-jax model directory)")
  with open(os.path.join(model_dir, INFO)) as f:
    info = json.load(f)
  if info.get("format") != FORMAT:
    raise CheckpointError(f"{path}: unknown checkpoint format {info.get('format')!r}")
  return info


def load_model_dir(path: str, options=None):
  """Loads a model directory (or a run directory's best model) as a `LoadedModel`."""
  from empathy_jax.models import weights  # pylint: disable=import-outside-toplevel
  from empathy_jax.models.api import DialogueModel  # pylint: disable=import-outside-toplevel
  from empathy_jax.models.configs import RuntimeOptions, config_from_hf  # pylint: disable=import-outside-toplevel
  from empathy_jax.models.loading import LoadedModel, _make_fmt  # pylint: disable=import-outside-toplevel

  model_dir = model_dir_of(path)
  info = read_info(path)
  cfg = config_from_hf(info["hf_config"], options or RuntimeOptions())
  fmt = _make_fmt(info["family"], os.path.join(model_dir, "tokenizer"), info["max_length"])
  params = restore_tree(os.path.join(model_dir, "params"))
  params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
  if cfg.scan_layers:
    params = weights.stack_layers(params)
  return LoadedModel(DialogueModel(cfg), params, fmt, info.get("generation_config") or {},
                     os.path.join(model_dir, "tokenizer"), info.get("name") or model_dir)


def load_extra(path: str) -> dict:
  model_dir = model_dir_of(path)
  if model_dir is None or not os.path.isdir(os.path.join(model_dir, "extra")):
    raise CheckpointError(f"{path}: no extra parameters saved")
  return restore_tree(os.path.join(model_dir, "extra"))
