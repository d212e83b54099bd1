"""The original's metric classifiers, loaded as published and run in jitted batches.

- Emotion (32 labels) and empathetic-intent (9 labels): transformers sequence-classifier folders
  (config.json, weights, `training_args.bin` with model_type, model_name_or_path,
  max_seq_length). Input `[CLS] tokens [SEP]`, tokens cut to max_seq_length - 2, padded.
- EPITOME IP / EX / ER: `finetuned_{IP,EX,ER}.pth` (or `.safetensors`) bi-encoder state dicts; roberta-base tokens,
  max length 64; the level is the argmax (0, 1, 2).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Sequence

import jax
import numpy as np

from empathy_jax.errors import CheckpointError
from empathy_jax.evaluation import encoders as E
from empathy_jax.models import safe_pickle
from empathy_jax.models.hf_io import read_json
from empathy_jax.tokenization.loading import resolve_source

EMOTION_LABELS = (
    "proud", "apprehensive", "disappointed", "faithful", "impressed", "devastated", "prepared",
    "nostalgic", "annoyed", "grateful", "joyful", "terrified", "caring", "trusting", "sad",
    "guilty", "sentimental", "hopeful", "confident", "surprised", "furious", "afraid",
    "jealous", "excited", "lonely", "disgusted", "embarrassed", "angry", "content", "ashamed",
    "anticipating", "anxious")
INTENT_LABELS = ("agreeing", "acknowledging", "encouraging", "consoling", "sympathizing",
                 "suggesting", "questioning", "wishing", "neutral")
EPITOME_MECHANISMS = ("IP", "EX", "ER")
EPITOME_MAX_LENGTH = 64
OWN_CONFIG = "classifier.json"  # a classifier folder written by train_classifier
ROBERTA_TOKENIZER = "package:roberta"


def _read_state(path: str) -> dict[str, np.ndarray]:
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel

    return dict(load_file(path))

  return safe_pickle.state_dict_arrays(path)


def _training_args(path: str, trust_pickle: bool = False) -> dict:
  args = safe_pickle.torch_load(path, trust_pickle)
  if isinstance(args, dict):
    return args
  return dict(getattr(args, "__dict__", {}) or getattr(args, "state", {}) or {})


def _tokenizer(source: str):
  from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel


  return AutoTokenizer.from_pretrained(resolve_source(source), trust_remote_code=False)


def _encode(tokenizer, texts: Sequence[str], max_length: int):
  enc = tokenizer(list(texts), max_length=max_length, truncation=True, padding="max_length",
                  add_special_tokens=True)
  return (np.asarray(enc["input_ids"], np.int32), np.asarray(enc["attention_mask"], np.int32))


WIDTH_STEP = 16  # batches are cut to a multiple of this many columns


def _batched(fn, arrays: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
  """Runs `fn` over fixed-size batches of right-padded (ids, mask, ids, mask, ...) arrays.

  Examples go in order of length and each batch keeps, of each (ids, mask) pair, only the
  columns up to that input's longest example in the batch (rounded up to a multiple of
  `WIDTH_STEP`): padding is masked, so no score changes, and most of the padding's work is
  skipped (EmpatheticDialogues responses fill about a quarter of 64 columns; EPITOME's
  responses are cut apart from its longer seeker posts). A run compiles at most
  (max_length / WIDTH_STEP) ** inputs shapes; the last batch is padded with empty rows. Every
  batch is dispatched before any result is read."""
  n = arrays[0].shape[0]
  if n == 0:
    return np.zeros((0,))
  lengths = [m.sum(1) for m in arrays[1::2]]
  order = np.argsort(-np.max(lengths, axis=0), kind="stable")
  outs = []
  for s in range(0, n, batch_size):
    rows = order[s:s + batch_size]
    widths = [max(WIDTH_STEP, -(-int(length[rows].max()) // WIDTH_STEP) * WIDTH_STEP)
              for length in lengths]
    chunk = [a[rows, :widths[i // 2]] for i, a in enumerate(arrays)]
    short = batch_size - len(rows)
    if short:
      chunk = [np.concatenate([c, np.zeros((short, *c.shape[1:]), c.dtype)]) for c in chunk]
    outs.append(fn(*chunk))
  results = np.concatenate(jax.device_get(outs))[:n]
  out = np.empty_like(results)
  out[order] = results
  return out


@dataclasses.dataclass
class TextClassifier:
  name: str
  params: dict
  cfg: E.EncoderConfig
  tokenizer: object
  max_seq_length: int
  labels: tuple[str, ...]

  def logits(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    ids, mask = _encode(self.tokenizer, texts, self.max_seq_length)
    fn = functools.partial(_classify_jit, self.params, self.cfg)
    return _batched(fn, [ids, mask], batch_size)

  def predict(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
    return self.logits(texts, batch_size).argmax(-1)


@functools.partial(jax.jit, static_argnums=1)
def _classify_jit(params, cfg, ids, mask):
  return E.classify(params, cfg, ids, mask)


@functools.partial(jax.jit, static_argnums=1)
def _epitome_jit(params, cfg, s_ids, s_mask, r_ids, r_mask):
  return E.epitome(params, cfg, s_ids, s_mask, r_ids, r_mask)


def check_text_classifier_dir(directory: str, name: str) -> str:
  """Raises a `CheckpointError` naming what a classifier folder lacks; returns its weights file.
  Cheap: launchers call it before any heavy work."""
  if not os.path.isdir(directory):
    raise CheckpointError(f"{name} classifier: {directory} is not a directory")
  if os.path.isfile(os.path.join(directory, OWN_CONFIG)):  # trained here (train_classifier)
    weights = os.path.join(directory, "model.safetensors")
    if not os.path.isfile(weights):
      raise CheckpointError(f"{name} classifier: {weights} is missing")
    return weights
  config = os.path.join(directory, "config.json")
  if not os.path.isfile(config):
    raise CheckpointError(f"{name} classifier: {config} is missing")
  # The published folders carry their training arguments (model type, input length) in
  # training_args.bin; a folder without one must say them in its config.json.
  if not os.path.isfile(os.path.join(directory, "training_args.bin")):
    said = read_json(config)
    if "model_type" not in said or "max_seq_length" not in said:
      raise CheckpointError(f"{name} classifier: {os.path.join(directory, 'training_args.bin')}"
                            f" is missing (or config.json must give model_type and "
                            f"max_seq_length)")
  weights = next((os.path.join(directory, w) for w in ("model.safetensors", "pytorch_model.bin")
                  if os.path.isfile(os.path.join(directory, w))), None)
  if weights is None:
    raise CheckpointError(f"{name} classifier: {directory} has no model.safetensors or "
                          f"pytorch_model.bin")
  return weights


def check_epitome_dir(directory: str) -> list[str]:
  """The three EPITOME state-dict files, or a `CheckpointError` naming the missing one."""
  if not os.path.isdir(directory):
    raise CheckpointError(f"EPITOME: {directory} is not a directory")
  paths = []
  for mech in EPITOME_MECHANISMS:
    # Ours (.safetensors, at the depth it was trained), else the original's .pth.
    found = [os.path.join(directory, f"finetuned_{mech}{ext}")
             for ext in (".safetensors", ".pth")]
    found = [p for p in found if os.path.isfile(p)]
    if not found:
      raise CheckpointError(f"EPITOME: {os.path.join(directory, f'finetuned_{mech}.pth')} is "
                            f"missing")
    paths.append(found[0])
  return paths


def load_text_classifier(directory: str, labels: Sequence[str], name: str,
                         trust_pickle: bool = False) -> TextClassifier:
  """Loads a published classifier folder; a missing file is named in the error."""
  weights = check_text_classifier_dir(directory, name)

  own = os.path.join(directory, OWN_CONFIG)
  if os.path.isfile(own):  # our folder: classifier.json says what the HF config and args say
    info = read_json(own)
    config = {"num_attention_heads": info["num_heads"], "layer_norm_eps": 1e-5,
              "pad_token_id": 1, "model_type": info["model_type"]}
    args = {"model_type": info["model_type"], "max_seq_length": info["max_length"],
            "tokenizer_name": "roberta-base"}
  else:
    config = read_json(os.path.join(directory, "config.json"))
    args_file = os.path.join(directory, "training_args.bin")
    args = _training_args(args_file, trust_pickle) if os.path.isfile(args_file) else {}
  model_type = args.get("model_type") or config.get("model_type")
  if model_type not in ("bert", "roberta"):
    raise CheckpointError(f"{name} classifier: model_type {model_type!r} is not bert/roberta")
  state = _read_state(weights)
  cfg = E.EncoderConfig(model_type=model_type, num_layers=E.count_layers(state, model_type),
                        num_heads=config["num_attention_heads"],
                        layer_norm_eps=config.get("layer_norm_eps", 1e-12),
                        pad_token_id=config.get("pad_token_id", 0),
                        activation=config.get("hidden_act", "gelu"))
  n_labels = state["classifier.out_proj.weight" if model_type == "roberta"
                   else "classifier.weight"].shape[0]
  if n_labels != len(labels):
    raise CheckpointError(f"{name} classifier has {n_labels} outputs, expected {len(labels)}")
  has_tok = any(os.path.exists(os.path.join(directory, f)) for f in
                ("tokenizer.json", "vocab.json", "vocab.txt"))
  base = args.get("model_name_or_path") or args.get("tokenizer_name") or ""
  source = directory if has_tok else (ROBERTA_TOKENIZER if model_type == "roberta" and
                                      "roberta-base" in str(base) else str(base))
  max_len = int(args.get("max_seq_length") or config.get("max_seq_length") or 128)
  return TextClassifier(name, E.prepare_params(state), cfg, _tokenizer(source), max_len,
                        tuple(labels))


@dataclasses.dataclass
class EpitomeScorer:
  params: dict[str, dict]  # mechanism -> params
  cfg: E.EncoderConfig
  tokenizer: object
  max_length: int = EPITOME_MAX_LENGTH

  def logits(self, mechanism: str, seeker_posts: Sequence[str], responses: Sequence[str],
             batch_size: int = 32) -> np.ndarray:
    s_ids, s_mask = _encode(self.tokenizer, seeker_posts, self.max_length)
    r_ids, r_mask = _encode(self.tokenizer, responses, self.max_length)
    fn = functools.partial(_epitome_jit, self.params[mechanism], self.cfg)
    return _batched(fn, [s_ids, s_mask, r_ids, r_mask], batch_size)

  def levels(self, mechanism, seeker_posts, responses, batch_size: int = 32) -> np.ndarray:
    return self.logits(mechanism, seeker_posts, responses, batch_size).argmax(-1)


def load_epitome(directory: str, tokenizer_source: str = ROBERTA_TOKENIZER) -> EpitomeScorer:
  params, cfg, max_length = {}, None, EPITOME_MAX_LENGTH
  for mech, path in zip(EPITOME_MECHANISMS, check_epitome_dir(directory)):
    state = _read_state(path)
    E.require(state, ["attn.q_linear.weight", "empathy_classifier.dense.weight",
                      "empathy_classifier.out_proj.weight",
                      "seeker_encoder.roberta.embeddings.word_embeddings.weight",
                      "responder_encoder.roberta.embeddings.word_embeddings.weight"], path)
    hidden = state["attn.q_linear.weight"].shape[0]
    cfg = E.EncoderConfig("roberta", E.count_layers(state, "seeker_encoder.roberta"),
                          num_heads=max(1, hidden // 64), layer_norm_eps=1e-5, pad_token_id=1)
    params[mech] = E.prepare_params(state)
    # EPITOME reads 64 tokens; a model with a shorter position table (trained here with a
    # smaller --max_length) reads what it has (RoBERTa's positions start after the pad id).
    positions = state["seeker_encoder.roberta.embeddings.position_embeddings.weight"].shape[0]
    max_length = min(max_length, positions - 2)
  return EpitomeScorer(params, cfg, _tokenizer(tokenizer_source), max_length)


def classification_report(pred: np.ndarray, truth: np.ndarray, labels: Sequence[str]
                          ) -> tuple[float, float, dict[str, float]]:
  """(accuracy, weighted F1, per-class precision/recall/F1) with the target label as truth;
  F1 weights are the classes' shares of the targets (scikit-learn's 'weighted')."""
  pred, truth = np.asarray(pred), np.asarray(truth)
  n = max(len(truth), 1)
  accuracy = float((pred == truth).mean()) if len(truth) else 0.0
  per_class, weighted = {}, 0.0
  for c, label in enumerate(labels):
    tp = float(((pred == c) & (truth == c)).sum())
    p_den, r_den = float((pred == c).sum()), float((truth == c).sum())
    precision = tp / p_den if p_den else 0.0
    recall = tp / r_den if r_den else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    per_class.update({f"{label}_precision": precision, f"{label}_recall": recall,
                      f"{label}_f1": f1})
    weighted += f1 * r_den / n
  return accuracy, weighted, per_class
