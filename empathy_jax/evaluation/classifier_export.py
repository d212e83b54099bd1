"""Trained classifiers in the formats `launch/test.py` and the original read:

- emotion / intent: a transformers RobertaForSequenceClassification folder (config.json with
  the labels and `max_seq_length`, model.safetensors, the RoBERTa tokenizer's files), with no
  `training_args.bin`: the config says what the published folders' training arguments said;
- EPITOME: `finetuned_{ER,IP,EX}.safetensors` (read without torch), and with torch installed
  the original's `finetuned_{ER,IP,EX}.pth` (a `torch.save`d state dict) beside them.
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


def export(cfg, params: dict, export_dir: str) -> str:
  """Writes the classifier of `cfg.task` (our flat params) into `export_dir` (each file
  written beside its place and renamed over it); returns `folder(cfg, export_dir)`."""
  state = CM.to_pytorch(params)
  out = folder(cfg, export_dir)
  os.makedirs(out, exist_ok=True)
  if cfg.task in EPITOME_TASKS:
    stem = os.path.join(out, f"finetuned_{cfg.task.split('_')[1]}")
    _atomic(stem + ".safetensors", lambda tmp: _safetensors(state, tmp))
    _atomic(stem + ".pth", lambda tmp: write_pth(state, tmp))
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
