"""Reading and writing Hugging Face checkpoint files without torch where possible.

`model.safetensors` (and sharded `model.safetensors.index.json`) are read with safetensors'
numpy API; `pytorch_model.bin` (and its index) are read as data by `safe_pickle`, without torch.
"""

from __future__ import annotations

import json
import os

import numpy as np

from empathy_jax.errors import CheckpointError
from empathy_jax.models import safe_pickle

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


def read_state_dict(model_dir: str) -> dict[str, np.ndarray]:
  """All weights of a Hugging Face model directory as float32 numpy arrays."""
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

  path = lambda name: os.path.join(model_dir, name)
  if os.path.isfile(path("model.safetensors")):
    return {k: v.astype(np.float32) for k, v in load_file(path("model.safetensors")).items()}
  for index_name, loader in (("model.safetensors.index.json", "st"),
                             ("pytorch_model.bin.index.json", "pt")):
    if os.path.isfile(path(index_name)):
      with open(path(index_name)) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
      state: dict[str, np.ndarray] = {}
      for shard in shards:
        if loader == "st":
          state.update({k: v.astype(np.float32) for k, v in load_file(path(shard)).items()})
        else:
          state.update(safe_pickle.state_dict_arrays(path(shard)))
      return state
  if os.path.isfile(path("pytorch_model.bin")):
    return safe_pickle.state_dict_arrays(path("pytorch_model.bin"))
  raise CheckpointError(f"{model_dir}: no weights found (looked for {', '.join(WEIGHT_FILES)})")


def read_json(path: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError as e:
    raise CheckpointError(f"{path}: file is missing") from e
  except json.JSONDecodeError as e:
    raise CheckpointError(f"{path}: invalid JSON: {e}") from e


def write_hf_dir(out_dir: str, config: dict, state: dict[str, np.ndarray], tokenizer=None,
                 generation_config: dict | None = None) -> None:
  """Writes config.json, model.safetensors (tied weights once), tokenizer, generation config."""
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump(config, f, indent=2, sort_keys=True)
  save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()},
            os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
  if tokenizer is not None:
    tokenizer.save_pretrained(out_dir)
  if generation_config:
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
      json.dump(generation_config, f, indent=2, sort_keys=True)


def resolve_hub(name: str) -> str:
  """Downloads (or finds in the local cache) a hub model's config, weights and tokenizer."""
  from huggingface_hub import snapshot_download  # pylint: disable=import-outside-toplevel

  patterns = ["*.json", "*.safetensors", "*.txt", "*.model"]
  try:
    path = snapshot_download(name, allow_patterns=patterns)
    if not any(os.path.exists(os.path.join(path, w)) for w in WEIGHT_FILES):
      path = snapshot_download(name, allow_patterns=patterns + ["pytorch_model*.bin"])
  except Exception as e:  # pylint: disable=broad-except
    raise CheckpointError(f"could not fetch {name!r} from the Hugging Face hub (is it a hub "
                          f"name and is the hub reachable?): {e}") from e
  return path
