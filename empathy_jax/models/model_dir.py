"""The empathy-jax model folder, in one place: what it holds, how it is written and read.

  model_info.json   family, transformers config, max length, generation defaults, extra heads
  tokenizer/        the tokenizer files (with `<PAD>`), so the folder is self-contained
  params/           orbax checkpoint of the parameters (unscanned layout, float32)
  extra/            optional orbax checkpoint of extra parameter trees (reward / value heads)

A run folder (`OUT/tensorboard_logs/version_N/`) holds `best/` and `latest/` model folders;
loading a run folder loads its `best/`. Folders are written atomically: into `NAME.tmp`, then
renamed, with the previous folder kept as `NAME.old` until the new one is in place, so a kill
at any point leaves either the old or the new model (`recover` puts `NAME.old` back).
Multi-host: every process calls `save`; only process 0 writes files other than orbax's.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

import jax
import numpy as np

from empathy_jax import families, sharding
from empathy_jax.errors import CheckpointError
from empathy_jax.models import weights
from empathy_jax.models.api import DialogueModel
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loaded import LoadedModel, format_for, unscanned_numpy_params

FORMAT = "empathy-jax/model-v1"
INFO = "model_info.json"


def _checkpointer():
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  return ocp.StandardCheckpointer()


def save_tree(path: str, tree) -> None:
  """Writes a pytree with orbax (which itself writes to a temporary folder, then renames)."""
  path = os.path.abspath(path)
  if os.path.exists(path) and jax.process_index() == 0:
    shutil.rmtree(path)
  sharding.barrier(f"save_tree:{path}")
  ckptr = _checkpointer()
  ckptr.save(path, tree)
  ckptr.wait_until_finished()


def restore_tree(path: str, target=None):
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise CheckpointError(f"{path}: checkpoint folder is missing")
  ckptr = _checkpointer()
  return ckptr.restore(path) if target is None else ckptr.restore(path, target)


def recover(path: str, marker: str = INFO) -> None:
  """Puts `path.old` back where a kill between the two renames of `swap_in` left no `path`
  (`marker`: the file a complete folder holds)."""
  old = path.rstrip("/") + ".old"
  if not os.path.exists(path) and os.path.isfile(os.path.join(old, marker)):
    os.replace(old, path)


def swap_in(tmp: str, path: str, marker: str = INFO) -> None:
  """Replaces the folder `path` by the complete folder `tmp` (two renames; a kill between them
  leaves `path.old`, which `recover` puts back)."""
  old = path + ".old"
  recover(path, marker)
  if os.path.exists(path):
    shutil.rmtree(old, ignore_errors=True)
    os.replace(path, old)
  os.replace(tmp, path)
  shutil.rmtree(old, ignore_errors=True)


def model_dir_of(path: str) -> str | None:
  """The model folder a path stands for: itself, a run folder's `best/`, or -- for a run's root
  (`OUT`, holding `tensorboard_logs/version_N/`) -- the `best/` of its newest version that has
  one (said once on stderr)."""
  for candidate in (path, os.path.join(path, "best")):
    recover(candidate)
    if os.path.isfile(os.path.join(candidate, INFO)):
      return candidate
  newest = newest_version(path)
  if newest is not None:
    found = model_dir_of(newest)
    if found is not None and path not in _ANNOUNCED:
      _ANNOUNCED.add(path)
      print(f"{path}: a run root; using its newest version {newest}", file=sys.stderr)
    return found
  return None


_ANNOUNCED: set[str] = set()


def newest_version(path: str) -> str | None:
  """`path/tensorboard_logs/version_N` with the highest N whose `best/` holds a model."""
  logs = os.path.join(path, "tensorboard_logs")
  if not os.path.isdir(logs):
    return None
  versions = sorted((int(name.split("_", 1)[1]), name) for name in os.listdir(logs)
                    if name.startswith("version_") and name.split("_", 1)[1].isdigit())
  for _, name in reversed(versions):
    if os.path.isfile(os.path.join(logs, name, "best", INFO)):
      return os.path.join(logs, name)
  return None


def save(loaded, path: str, extra: dict[str, Any] | None = None,
         metadata: dict[str, Any] | None = None, param_dtype: str = "float32",
         with_tokenizer: bool = True) -> None:
  """Saves a `LoadedModel` (and optional extra parameter trees) as a model folder.
  `param_dtype` "bfloat16" halves the parameters' files (loading upcasts them);
  `with_tokenizer=False` leaves the tokenizer out (a model shipped in the package, whose
  registry entry names its tokenizer)."""
  path = os.path.abspath(path).rstrip("/")
  tmp = path + ".tmp"
  primary = jax.process_index() == 0
  params = unscanned_numpy_params(loaded)  # collective: before any process-0-only work
  if param_dtype != "float32":
    params = jax.tree.map(lambda x: jax.numpy.asarray(x, param_dtype), params)
  extra = sharding.to_host(extra) if extra else None
  if primary:
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    cfg = loaded.model.cfg
    info = {"format": FORMAT, "family": cfg.family, "hf_config": cfg.hf_dict(),
            "max_length": loaded.fmt.max_length, "generation_config": loaded.generation_config,
            "name": loaded.name, "extra": sorted(extra or {}), "metadata": metadata or {}}
    if with_tokenizer:
      loaded.tokenizer.save_pretrained(os.path.join(tmp, "tokenizer"))
  save_tree(os.path.join(tmp, "params"), params)
  if extra:
    save_tree(os.path.join(tmp, "extra"), extra)
  if primary:
    # model_info.json last: a folder without it is never taken for a model.
    with open(os.path.join(tmp, INFO), "w") as f:
      json.dump(info, f, indent=2, sort_keys=True)
    swap_in(tmp, path)
  sharding.barrier(f"model_dir.save:{path}")


def read_info(path: str) -> dict:
  model_dir = model_dir_of(path)
  if model_dir is None:
    raise CheckpointError(f"{path}: no {INFO} (not an empathy-jax model folder)")
  info_path = os.path.join(model_dir, INFO)
  try:
    with open(info_path) as f:
      info = json.load(f)
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{info_path}: not valid JSON ({e})") from e
  if not isinstance(info, dict):
    raise CheckpointError(f"{info_path}: not a JSON object")
  if info.get("format") != FORMAT:
    raise CheckpointError(f"{path}: unknown checkpoint format {info.get('format')!r}")
  if info.get("family") not in families.FAMILIES:
    raise CheckpointError(f"{info_path}: family {info.get('family')!r} is not one of "
                          f"{', '.join(families.FAMILIES)}")
  if not isinstance(info.get("hf_config"), dict) or "model_type" not in info["hf_config"]:
    raise CheckpointError(f"{info_path}: no hf_config with a model_type")
  if not isinstance(info.get("max_length"), int) or info["max_length"] < 1:
    raise CheckpointError(f"{info_path}: max_length must be a positive integer, got "
                          f"{info.get('max_length')!r}")
  return info


def load(path: str, options=None):
  """Loads a model folder (or a run folder's best model) as a `LoadedModel`."""
  info = read_info(path)
  model_dir = model_dir_of(path)
  cfg = families.config_from_hf(info["hf_config"], options or RuntimeOptions())
  fmt = format_for(info["family"], os.path.join(model_dir, "tokenizer"), info["max_length"])
  params = restore_tree(os.path.join(model_dir, "params"))
  params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
  if cfg.scan_layers:
    params = weights.stack_layers(params)
  return LoadedModel(DialogueModel(cfg), params, fmt, info.get("generation_config") or {},
                     os.path.join(model_dir, "tokenizer"), info.get("name") or model_dir)


def load_params(path: str, abstract=None) -> dict:
  """A model folder's parameters (unscanned layout), upcast to float32 whatever they were
  stored in; `abstract` (shapes): checked leaf by leaf, a mismatch is a `CheckpointError`."""
  folder = model_dir_of(path) or path
  params = jax.tree.map(lambda x: np.asarray(x, np.float32),
                        restore_tree(os.path.join(folder, "params")))
  if abstract is not None:
    want = jax.tree_util.tree_flatten_with_path(abstract)[0]
    got = dict(jax.tree_util.tree_flatten_with_path(params)[0])
    for key, leaf in want:
      if key not in got or tuple(got[key].shape) != tuple(leaf.shape):
        raise CheckpointError(f"{folder}: parameter {jax.tree_util.keystr(key)} is "
                              f"{getattr(got.get(key), 'shape', 'missing')}, the "
                              f"architecture needs {tuple(leaf.shape)}")
  return params


def load_extra(path: str) -> dict:
  model_dir = model_dir_of(path)
  if model_dir is None or not os.path.isdir(os.path.join(model_dir, "extra")):
    raise CheckpointError(f"{path}: no extra parameters saved")
  return restore_tree(os.path.join(model_dir, "extra"))
