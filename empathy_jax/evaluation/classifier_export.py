"""Trained classifiers in the formats `launch/test.py` and the original read:

- emotion / intent: a transformers RobertaForSequenceClassification folder (config.json with
  the labels and `max_seq_length`, model.safetensors, the RoBERTa tokenizer's files), with no
  `training_args.bin`: the config says what the published folders' training arguments said;
- EPITOME: `finetuned_{ER,IP,EX}.safetensors` (read without torch), and with torch installed
  the original's `finetuned_{ER,IP,EX}.pth` (a `torch.save`d state dict) beside them, in
  roberta-base's shapes: the original builds its class from roberta-base and loads strictly.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from empathy_jax.data.classifier_data import EPITOME_TASKS
from empathy_jax.evaluation import classifier_models as CM
from empathy_jax.tokenization.loading import resolve_source

TEXT_FOLDERS = {"emotion": "emotion", "intent": "intent"}
EPITOME_FOLDER = "epitome"


def hf_config(size: CM.EncoderSize, labels: tuple[str, ...]) -> dict:
  return {"architectures": ["RobertaForSequenceClassification"], "model_type": "roberta",
          "vocab_size": size.vocab_size, "hidden_size": size.hidden_size,
          "num_hidden_layers": size.num_layers, "num_attention_heads": size.num_heads,
          "intermediate_size": size.intermediate_size, "hidden_act": "gelu",
          "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
          "max_position_embeddings": size.max_length + 2, "type_vocab_size": 1,
          "initializer_range": 0.02, "layer_norm_eps": 1e-5, "pad_token_id": CM.ROBERTA_PAD,
          "bos_token_id": 0, "eos_token_id": 2,
          "id2label": {str(i): label for i, label in enumerate(labels)},
          "label2id": {label: i for i, label in enumerate(labels)},
          "max_seq_length": size.max_length}


def folder(cfg, export_dir: str) -> str:
  """The folder `test.py` takes for the classifier of `cfg.task` exported into `export_dir`."""
  return os.path.join(export_dir, EPITOME_FOLDER if cfg.task in EPITOME_TASKS
                      else TEXT_FOLDERS[cfg.task])


def exported(cfg, export_dir: str) -> bool:
  """Whether `export_dir` holds this task's exported weights."""
  name = (f"finetuned_{cfg.task.split('_')[1]}.safetensors" if cfg.task in EPITOME_TASKS
          else "model.safetensors")
  return os.path.isfile(os.path.join(folder(cfg, export_dir), name))


def export(cfg, params: dict, export_dir: str, original_pth: bool = True) -> str:
  """Writes the classifier of `cfg.task` (our flat params) into `export_dir` (each file
  written beside its place and renamed over it); returns `folder(cfg, export_dir)`.
  `original_pth=False` leaves out the EPITOME .pth (about 1 GB each in roberta-base's shapes;
  test.py reads the .safetensors)."""
  state = CM.to_pytorch(params)
  out = folder(cfg, export_dir)
  os.makedirs(out, exist_ok=True)
  if cfg.task in EPITOME_TASKS:
    stem = os.path.join(out, f"finetuned_{cfg.task.split('_')[1]}")
    _atomic(stem + ".safetensors", lambda tmp: _safetensors(state, tmp))
    if original_pth:
      _atomic(stem + ".pth", lambda tmp: write_pth(as_roberta_base(state, cfg.size()), tmp))
    return out
  tokenizer = resolve_source("package:roberta")
  for name in ("vocab.json", "merges.txt"):
    _atomic(os.path.join(out, name),
            lambda tmp, name=name: shutil.copy(os.path.join(tokenizer, name), tmp))
  _atomic(os.path.join(out, "model.safetensors"), lambda tmp: _safetensors(state, tmp))
  config = json.dumps(hf_config(cfg.size(), CM.task_labels(cfg.task)), indent=2)
  _atomic(os.path.join(out, "config.json"), lambda tmp: _write_text(tmp, config))
  return out


def _write_text(path: str, text: str) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def _safetensors(state, path: str) -> None:
  from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel

  save_file(state, path)


def _atomic(path: str, write) -> None:
  """`write(tmp)` then renamed over `path` (nothing when `write` returns False)."""
  tmp = path + ".tmp"
  if write(tmp) is False:
    return
  os.replace(tmp, path)


def write_pth(state: dict[str, np.ndarray], path: str) -> bool:
  """The original's EPITOME file (`torch.save` of the state dict), when torch is installed;
  False when it is not (the .safetensors beside it holds the same weights)."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    return False
  from collections import OrderedDict  # pylint: disable=import-outside-toplevel

  torch.save(OrderedDict((k, torch.from_numpy(np.ascontiguousarray(v)))
                         for k, v in state.items()), path)
  return True


# What the original's EPITOME class builds each encoder as (roberta-base), before it loads a
# state dict strictly: the shapes a .pth for it must have.
ROBERTA_BASE = CM.EncoderSize(hidden_size=768, num_layers=12, num_heads=12,
                              intermediate_size=3072, max_length=512)


def fits_roberta_base(size: CM.EncoderSize) -> bool:
  """Whether an encoder of `size` can be written in roberta-base's shapes (`as_roberta_base`)."""
  base = ROBERTA_BASE
  return ((size.hidden_size, size.num_heads) == (base.hidden_size, base.num_heads)
          and size.num_layers <= base.num_layers
          and size.intermediate_size <= base.intermediate_size
          and size.max_length <= base.max_length)


def as_roberta_base(state: dict[str, np.ndarray], size: CM.EncoderSize
                    ) -> dict[str, np.ndarray]:
  """An EPITOME state dict (PyTorch orientation) of `size` in roberta-base's shapes, computing
  the same function on inputs of up to `size.max_length` tokens:
  - the feed-forward is widened with zero units (gelu(0) = 0 adds nothing);
  - the position table is padded with zero rows (positions never trained);
  - the missing layers are identities: zero attention and feed-forward outputs, so each is
    LayerNorm(x), which leaves an already normalised x as it is (to ~eps). The last trained
    layer's output norm becomes a plain normalisation and its scale and shift move to layer
    12, so the encoder still ends with them.
  """
  base = ROBERTA_BASE
  if not fits_roberta_base(size):
    raise ValueError(f"EPITOME .pth: a {size} encoder does not fit roberta-base's shapes")
  out = dict(state)
  d, extra = base.hidden_size, base.intermediate_size - size.intermediate_size
  for side in ("seeker", "responder"):
    prefix = f"{side}_encoder.roberta"
    pos = f"{prefix}.embeddings.position_embeddings.weight"
    out[pos] = np.pad(state[pos], ((0, base.max_length + 2 - state[pos].shape[0]), (0, 0)))
    for i in range(size.num_layers):
      lp = f"{prefix}.encoder.layer.{i}"
      out[f"{lp}.intermediate.dense.weight"] = np.pad(state[f"{lp}.intermediate.dense.weight"],
                                                      ((0, extra), (0, 0)))
      out[f"{lp}.intermediate.dense.bias"] = np.pad(state[f"{lp}.intermediate.dense.bias"],
                                                    (0, extra))
      out[f"{lp}.output.dense.weight"] = np.pad(state[f"{lp}.output.dense.weight"],
                                                ((0, 0), (0, extra)))
    if size.num_layers == base.num_layers:
      continue
    last = f"{prefix}.encoder.layer.{size.num_layers - 1}.output.LayerNorm"
    scale, shift = state[f"{last}.weight"], state[f"{last}.bias"]
    out[f"{last}.weight"], out[f"{last}.bias"] = np.ones(d, np.float32), np.zeros(d, np.float32)
    for i in range(size.num_layers, base.num_layers):
      lp = f"{prefix}.encoder.layer.{i}"
      for name, shape in (("attention.self.query", (d, d)), ("attention.self.key", (d, d)),
                          ("attention.self.value", (d, d)), ("attention.output.dense", (d, d)),
                          ("intermediate.dense", (base.intermediate_size, d)),
                          ("output.dense", (d, base.intermediate_size))):
        out[f"{lp}.{name}.weight"] = np.zeros(shape, np.float32)
        out[f"{lp}.{name}.bias"] = np.zeros(shape[0], np.float32)
      for name in ("attention.output.LayerNorm", "output.LayerNorm"):
        out[f"{lp}.{name}.weight"] = np.ones(d, np.float32)
        out[f"{lp}.{name}.bias"] = np.zeros(d, np.float32)
    final = f"{prefix}.encoder.layer.{base.num_layers - 1}.output.LayerNorm"
    out[f"{final}.weight"], out[f"{final}.bias"] = scale, shift
  return out
