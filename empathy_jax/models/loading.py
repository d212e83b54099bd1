"""Load a dialogue model from anything users have: a registry name, a Hugging Face directory or
hub name, the original project's PyTorch Lightning checkpoint, or our own checkpoint directory;
and export back to a Hugging Face directory or an original-style `.ckpt`.

The family (and so the input format) of a Hugging Face directory comes from its config's
`model_type` (t5 → godel, gpt2 → dialogpt, blenderbot → blenderbot) unless overridden.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from typing import Any

import jax
import numpy as np

from empathy_jax import families, registry
from empathy_jax.errors import CheckpointError, OutputExistsError
from empathy_jax.models import hf_io, model_dir, safe_pickle, weights
from empathy_jax.models.api import DialogueModel, param_count
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loaded import LoadedModel, format_for, unscanned_numpy_params


# -- vocabulary resizing -------------------------------------------------------------------------


def resize_vocab(params: dict, cfg, new_size: int) -> tuple[dict, Any]:
  """Grows the vocabulary to `new_size` as the original's `resize_token_embeddings` does.

  New rows are the mean of the old embedding rows (transformers' mean-resizing centre, without
  its tiny random jitter, so loading is deterministic); BlenderBot's logits bias gains zeros
  (each family's `vocab_params`).
  """
  old = cfg.vocab_size
  if new_size == old:
    return params, cfg
  if new_size < old:
    raise CheckpointError(f"tokenizer has {new_size} tokens but the model's vocabulary is "
                          f"{old}; refusing to shrink the embeddings")
  params = jax.tree.map(lambda x: x, params)  # shallow copy of the nesting
  extra = new_size - old

  for path, axis, fill in families.of(cfg).vocab_params(cfg):
    node = params
    for p in path[:-1]:
      node = node[p]
    x = np.asarray(node[path[-1]])
    shape = list(x.shape)
    shape[axis] = extra
    rows = (np.zeros(shape, x.dtype) if fill == "zeros" else
            np.repeat(x.mean(axis=axis, keepdims=True), extra, axis=axis))
    node[path[-1]] = np.concatenate([x, rows], axis=axis)
  return params, cfg.replace(vocab_size=new_size)


# -- building ------------------------------------------------------------------------------------


def _finish(params_unscanned, cfg, fmt, generation_config, tokenizer_source, name):
  params, cfg = resize_vocab(params_unscanned, cfg, fmt.vocab_size)
  if cfg.scan_layers:
    params = weights.stack_layers(params)
  params = jax.tree.map(lambda x: np.asarray(x, np.float32), params)
  return LoadedModel(DialogueModel(cfg), params, fmt, generation_config or {},
                     tokenizer_source, name)


def _abstract_unscanned(cfg):
  shapes = DialogueModel(cfg.replace(scan_layers=False)).abstract_params()
  import flax.linen as nn  # pylint: disable=import-outside-toplevel

  return nn.unbox(shapes)


def _has_tokenizer(path: str) -> bool:
  names = ("tokenizer.json", "vocab.json", "spiece.model", "tokenizer_config.json")
  return any(os.path.exists(os.path.join(path, n)) for n in names)


def from_hf_dir(path: str, options: RuntimeOptions = RuntimeOptions(), family: str | None = None,
                tokenizer_source: str | None = None, max_length: int | None = None,
                name: str | None = None) -> LoadedModel:
  """Loads a Hugging Face model directory (config.json + weights [+ tokenizer])."""
  hf = hf_io.read_json(os.path.join(path, "config.json"))
  family = family or families.for_model_type(hf.get("model_type", "")).name
  cfg = families.config_from_hf(hf, options)
  if cfg.family != family:
    raise CheckpointError(f"{path}: architecture {hf.get('model_type')} cannot use the "
                          f"{family} input format")
  if tokenizer_source is None:
    tokenizer_source = path if _has_tokenizer(path) else families.get(family).default_tokenizer
    if tokenizer_source is None:
      raise CheckpointError(f"{path}: no tokenizer files and no default for family {family}")
  fmt = format_for(family, tokenizer_source, max_length)
  state = hf_io.read_state_dict(path)
  params = weights.hf_to_params(state, families.weight_map(cfg), _abstract_unscanned(cfg))
  gen_path = os.path.join(path, "generation_config.json")
  generation = hf_io.read_json(gen_path) if os.path.exists(gen_path) else {}
  return _finish(params, cfg, fmt, generation, tokenizer_source, name or path)


def from_spec(spec: registry.ModelSpec, options: RuntimeOptions = RuntimeOptions(),
              seed: int = 0) -> LoadedModel:
  if spec.hub_name is not None:
    return from_hf_dir(hf_io.resolve_hub(spec.hub_name), options, spec.family, spec.tokenizer,
                       spec.max_length, spec.name)
  fmt = format_for(spec.family, spec.tokenizer, spec.max_length)
  hf = dict(spec.config)
  hf.setdefault("vocab_size", fmt.vocab_size)
  cfg = families.config_from_hf(hf, options)
  if spec.weights is not None:  # trained here and shipped: the folder's parameters
    folder = spec.weights_dir
    if not os.path.isdir(os.path.join(folder, "params")):
      raise CheckpointError(f"{folder}: the shipped weights of {spec.name} are missing (a "
                            f"source checkout without them? see configs/ to retrain)")
    params = model_dir.load_params(folder, _abstract_unscanned(cfg))
    generation = model_dir.read_info(folder).get("generation_config") or {}
    return _finish(params, cfg, fmt, generation, spec.tokenizer, spec.name)
  params = DialogueModel(cfg.replace(scan_layers=False)).init_params(jax.random.PRNGKey(seed))
  return _finish(params, cfg, fmt, {}, spec.tokenizer, spec.name)


# -- the original's Lightning checkpoints ----------------------------------------------------------


def find_ckpt(path: str) -> str:
  """A `.ckpt` file, or the first `*.ckpt` in sorted order under `path/checkpoints/`."""
  if os.path.isfile(path):
    return path
  found = sorted(glob.glob(os.path.join(path, "checkpoints", "*.ckpt")))
  if not found:
    raise CheckpointError(f"{path}: no checkpoints/*.ckpt file found")
  return found[0]


def _class_name(value) -> str:
  if isinstance(value, str):
    return value.rsplit(".", 1)[-1]
  return getattr(value, "__qualname__", None) or type(value).__name__


def _spec_for_original(config: dict) -> registry.ModelSpec:
  cls = _class_name(config.get("model_cls", "")).lower()
  kwargs = config.get("model_kwargs") or {}
  version = str(kwargs.get("version", kwargs.get("size", ""))).lower()
  for family in families.FAMILIES.values():
    if any(key in cls for key in family.original_class_keys):
      versions = family.original_versions
      return registry.get_model_spec(versions.get(version, next(iter(versions.values()))))
  raise CheckpointError(f"unknown model class {config.get('model_cls')!r} in checkpoint")


def read_lightning(path: str, trust_pickle: bool = False
                   ) -> tuple[dict[str, np.ndarray], dict, dict[str, np.ndarray]]:
  """(HF state dict with the `model.model.` prefix removed, hyper_parameters, the rest of the
  state_dict: a reward model's `linear.*` and `mean_offset`) of a `.ckpt`.

  Unpickled with an allow-list (`safe_pickle`) unless `trust_pickle` (runs any code the file
  holds: only for files whose author you trust).
  """
  ckpt = safe_pickle.torch_load(path, trust_pickle)
  if not isinstance(ckpt, dict):
    raise CheckpointError(f"{path}: not a Lightning checkpoint (a {type(ckpt).__name__})")
  if "state_dict" not in ckpt:
    raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
  prefix = "model.model."
  state, rest = {}, {}
  for k, v in ckpt["state_dict"].items():
    if hasattr(v, "detach"):  # torch's own tensors, when --trust_pickle read the file
      v = v.detach().float().numpy()
    if not isinstance(v, (np.ndarray, int, float)) or isinstance(v, bool):
      raise CheckpointError(f"{path}: state_dict[{k!r}] is a {type(v).__name__}, not a tensor")
    value = np.asarray(v, np.float32)
    if k.startswith(prefix):
      state[k[len(prefix):]] = value
    else:
      rest[k] = value
  if not state:
    raise CheckpointError(f"{path}: no dialogue-model weights (keys starting with {prefix!r})")
  return state, dict(ckpt.get("hyper_parameters") or {}), rest


def from_lightning(path: str, options: RuntimeOptions = RuntimeOptions(),
                   trust_pickle: bool = False) -> LoadedModel:
  ckpt_path = find_ckpt(path)
  state, hparams, _ = read_lightning(ckpt_path, trust_pickle)
  return loaded_from_lightning_state(ckpt_path, state, hparams, options)


def loaded_from_lightning_state(ckpt_path: str, state: dict, hparams: dict,
                                options: RuntimeOptions = RuntimeOptions()) -> LoadedModel:
  """The dialogue model of a read `.ckpt` (`read_lightning`'s first two results)."""
  config = hparams.get("config") or {}
  spec = _spec_for_original(config)
  hf = (config.get("model_kwargs") or {}).get("hf_config")
  if hf is None:
    hf = dict(spec.config) if spec.config is not None else hf_io.read_json(
        os.path.join(hf_io.resolve_hub(spec.hub_name), "config.json"))
  fmt = format_for(spec.family, spec.tokenizer, spec.max_length)
  vocab_key = families.get(spec.family).torch_vocab_key
  vocab_rows = state[vocab_key].shape[0] if vocab_key in state else None
  hf = dict(hf, vocab_size=vocab_rows or hf.get("vocab_size") or fmt.vocab_size)
  if hf["vocab_size"] != fmt.vocab_size:
    raise CheckpointError(f"{ckpt_path}: embeddings have {hf['vocab_size']} rows but the "
                          f"rebuilt {spec.name} tokenizer has {fmt.vocab_size} tokens")
  cfg = families.config_from_hf(hf, options)
  params = weights.hf_to_params(state, families.weight_map(cfg), _abstract_unscanned(cfg))
  generation = dict(hparams.get("generation_config") or {})
  # Named by its registry entry, so that an export writes the same model_cls/version back.
  return _finish(params, cfg, fmt, generation, spec.tokenizer, spec.name)


# -- dispatch ------------------------------------------------------------------------------------


def load_model(source: str, options: RuntimeOptions = RuntimeOptions(),
               family: str | None = None, seed: int = 0,
               trust_pickle: bool = False) -> LoadedModel:
  """Loads `source`: a registry name, a local directory (Hugging Face, ours, or a Lightning run
  folder), a `.ckpt` file, or a hub name."""
  kind = source_kind(source)
  if kind == "registry":
    return from_spec(registry.get_model_spec(source), options, seed)
  if kind == "ckpt":
    return from_lightning(source, options, trust_pickle)
  if kind == "hf":
    return from_hf_dir(source, options, family)
  if kind == "ours":
    return model_dir.load(source, options)
  return from_hf_dir(hf_io.resolve_hub(source), options, family, name=source)


def source_kind(source: str) -> str:
  """What `source` is (registry, ckpt, hf, ours, hub), checked without loading weights; a
  local path that is none of these raises `CheckpointError` naming what was looked for."""
  if source in registry.all_models():
    return "registry"
  if os.path.isfile(source) and source.endswith(".ckpt"):
    return "ckpt"
  if os.path.isdir(source):
    if os.path.exists(os.path.join(source, "config.json")):
      return "hf"
    if model_dir.model_dir_of(source) is not None:
      model_dir.read_info(source)  # a corrupt model_info.json is reported here
      return "ours"
    if glob.glob(os.path.join(source, "checkpoints", "*.ckpt")):
      return "ckpt"
    raise CheckpointError(f"{source}: not a Hugging Face directory (config.json), an "
                          f"empathy-jax checkpoint or a Lightning run folder (checkpoints/*.ckpt)")
  if os.path.exists(source):
    raise CheckpointError(f"{source}: not a model directory or .ckpt file")
  if source.startswith((".", "/")) or source.count("/") > 1:
    raise CheckpointError(f"{source}: no such file or folder")
  return "hub"


# -- export ----------------------------------------------------------------------------------------


def export_hf(loaded: LoadedModel, out_dir: str) -> None:
  """A Hugging Face directory that transformers' PyTorch classes load with the same logits."""
  cfg = loaded.model.cfg
  state = weights.params_to_hf(unscanned_numpy_params(loaded), families.weight_map(cfg))
  hf_io.write_hf_dir(out_dir, cfg.hf_dict(), state, loaded.tokenizer,
                     loaded.generation_config)


def _original_version(name: str, family: families.Family) -> str:
  """The original's `version` kwarg for a registry name (GODEL_LARGE -> large, *_TINY -> tiny)."""
  base = os.path.basename(str(name))
  for version, registry_name in family.original_versions.items():
    if registry_name == base:
      return version
  return "tiny" if base.endswith("_TINY") else ""


def export_lightning(loaded: LoadedModel, out_path: str, version: str | None = None,
                     extra_state: dict[str, np.ndarray] | None = None) -> None:
  """An original-style `.ckpt`: `model.model.<key>` weights and `hyper_parameters.config`
  (plus `extra_state` entries as they are, e.g. a reward model's `linear.*`, `mean_offset`).

  The transformers config travels in `model_kwargs.hf_config`, so the file is self-contained.
  """
  import torch  # pylint: disable=import-outside-toplevel

  cfg = loaded.model.cfg
  family = families.of(cfg)
  version = _original_version(loaded.name, family) if version is None else version
  state = weights.params_to_hf(unscanned_numpy_params(loaded), families.weight_map(cfg))
  state_dict = {f"model.model.{k}": torch.from_numpy(np.ascontiguousarray(v))
                for k, v in state.items()}
  for k, v in (extra_state or {}).items():
    state_dict[k] = torch.from_numpy(np.ascontiguousarray(np.asarray(v, np.float32)))
  ckpt = {
      "state_dict": state_dict,
      "hyper_parameters": {"config": {
          "model_cls": family.original_class,
          "model_kwargs": {"version": version, "hf_config": cfg.hf_dict()},
          "tokenizer_cls": family.original_class,
          "tokenizer_kwargs": {"version": version}},
          "generation_config": loaded.generation_config},
      "epoch": 0, "global_step": 0, "pytorch-lightning_version": "empathy-jax",
  }
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  torch.save(ckpt, out_path)


def describe(loaded: LoadedModel) -> str:
  return json.dumps({"name": loaded.name, "family": loaded.model.family,
                     "parameters": param_count(loaded.params),
                     "vocab_size": loaded.model.cfg.vocab_size})


FORMATS = ("hf", "ckpt", "ours", "packaged")


def convert_checkpoint(source: str, output: str, to: str, family: str | None = None,
                       trust_pickle: bool = False, overwrite: bool = False) -> str:
  """Converts between a Hugging Face directory, an original `.ckpt` and our model directory
  (`packaged`: ours with bfloat16 parameters and no tokenizer, as a registry entry's shipped
  `weights` are stored).

  `source` is anything `load_model` accepts; returns the path written. An existing `output` is
  refused before anything is loaded unless `overwrite`; the conversion is written beside it
  and moved into place whole, so a failed or killed conversion leaves `output` as it was.
  """
  if to not in FORMATS:
    raise ValueError(f"--to must be one of {FORMATS}, got {to!r}")
  # `output` is what is replaced as one; a .ckpt run folder holds the file inside it.
  inside = ("checkpoints", "converted.ckpt") if to == "ckpt" and (
      os.path.isdir(output) or not output.endswith(".ckpt")) else ()
  if os.path.lexists(output) and not overwrite:
    raise OutputExistsError(f"{output}: already exists; pass --overwrite to replace it, or "
                            f"choose another --output")
  loaded = load_model(source, family=family, trust_pickle=trust_pickle)
  parent = os.path.dirname(os.path.abspath(output))
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.converting-", dir=parent)
  try:
    staged = os.path.join(staging, "out")
    if to == "hf":
      export_hf(loaded, staged)
    elif to == "ckpt":
      export_lightning(loaded, os.path.join(staged, *inside))
    elif to == "packaged":
      model_dir.save(loaded, staged, param_dtype="bfloat16", with_tokenizer=False)
    else:
      model_dir.save(loaded, staged)
    if os.path.lexists(output):  # moved aside, then removed with the staging folder
      os.rename(output, os.path.join(staging, "replaced"))
    os.rename(staged, output)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return os.path.join(output, *inside)
