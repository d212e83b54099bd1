"""New metric classifiers, in the published classifiers' layouts, for training here
(`launch/train_classifier.py`): random initial weights as flat dicts keyed by the PyTorch
names that `encoders` reads (Linear weights as [in, out]), and the conversions to and from
PyTorch's orientation for saving.

- Emotion / intent: transformers' RobertaForSequenceClassification (RoBERTa tokens, `<s>`
  pooled through `classifier.dense`, tanh, `classifier.out_proj`).
- EPITOME: the bi-encoder the original loads (`BiEncoderAttentionWithRationaleClassification`):
  seeker and responder RoBERTa encoders, one-head cross attention, the empathy head and the
  rationale head, plus the `norm` and poolers its state dict carries and its forward pass
  never uses. Its heads are built 768 wide
  in the original's code, so EPITOME models are 768 wide (their depth is free).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from empathy_jax.evaluation import encoders as E
from empathy_jax.evaluation.classifiers import EMOTION_LABELS, INTENT_LABELS

ROBERTA_VOCAB, ROBERTA_PAD = 50265, 1
EPITOME_WIDTH = 768  # fixed by the original's EPITOME class
LEVELS = ("none", "weak", "strong")  # EPITOME's levels 0, 1, 2


def task_labels(task: str) -> tuple[str, ...]:
  """The labels a task's outputs stand for, in output order."""
  return {"emotion": EMOTION_LABELS, "intent": INTENT_LABELS}.get(task, LEVELS)


@dataclasses.dataclass(frozen=True)
class EncoderSize:
  hidden_size: int
  num_layers: int
  num_heads: int
  intermediate_size: int
  max_length: int  # tokens, specials included
  vocab_size: int = ROBERTA_VOCAB

  def encoder_config(self) -> E.EncoderConfig:
    return E.EncoderConfig("roberta", self.num_layers, self.num_heads, layer_norm_eps=1e-5,
                           pad_token_id=ROBERTA_PAD)


class _Init:
  """Draws weights as transformers initialises them: normal(0.02), zero biases, unit norms."""

  def __init__(self, seed: int):
    self.rng = np.random.default_rng(seed)
    self.params: dict[str, np.ndarray] = {}

  def dense(self, name: str, n_in: int, n_out: int) -> None:
    self.params[f"{name}.weight"] = self.rng.normal(0, 0.02, (n_in, n_out)).astype(np.float32)
    self.params[f"{name}.bias"] = np.zeros(n_out, np.float32)

  def norm(self, name: str, width: int, weight="weight", bias="bias") -> None:
    self.params[f"{name}.{weight}"] = np.ones(width, np.float32)
    self.params[f"{name}.{bias}"] = np.zeros(width, np.float32)

  def encoder(self, prefix: str, size: EncoderSize) -> None:
    d, e = size.hidden_size, f"{prefix}.embeddings"
    for name, rows in (("word", size.vocab_size), ("position", size.max_length + 2),
                       ("token_type", 1)):
      self.params[f"{e}.{name}_embeddings.weight"] = self.rng.normal(
          0, 0.02, (rows, d)).astype(np.float32)
    self.params[f"{e}.word_embeddings.weight"][ROBERTA_PAD] = 0.0  # padding_idx
    self.params[f"{e}.position_embeddings.weight"][ROBERTA_PAD] = 0.0
    self.norm(f"{e}.LayerNorm", d)
    for i in range(size.num_layers):
      lp = f"{prefix}.encoder.layer.{i}"
      for name in ("query", "key", "value"):
        self.dense(f"{lp}.attention.self.{name}", d, d)
      self.dense(f"{lp}.attention.output.dense", d, d)
      self.norm(f"{lp}.attention.output.LayerNorm", d)
      self.dense(f"{lp}.intermediate.dense", d, size.intermediate_size)
      self.dense(f"{lp}.output.dense", size.intermediate_size, d)
      self.norm(f"{lp}.output.LayerNorm", d)


def init_text_classifier(size: EncoderSize, num_labels: int, seed: int) -> dict:
  init = _Init(seed)
  init.encoder("roberta", size)
  init.dense("classifier.dense", size.hidden_size, size.hidden_size)
  init.dense("classifier.out_proj", size.hidden_size, num_labels)
  return init.params


def init_epitome(size: EncoderSize, seed: int) -> dict:
  if size.hidden_size != EPITOME_WIDTH:
    raise ValueError(f"--hidden_size: EPITOME models are {EPITOME_WIDTH} wide (the original's "
                     f"EPITOME class builds its heads that wide), got {size.hidden_size}")
  init, d = _Init(seed), size.hidden_size
  for side in ("seeker", "responder"):
    init.encoder(f"{side}_encoder.roberta", size)
    # Its encoders carry a pooler the forward pass never uses: kept so the state dict loads.
    init.dense(f"{side}_encoder.roberta.pooler.dense", d, d)
  for name in ("q_linear", "k_linear", "v_linear", "out"):
    init.dense(f"attn.{name}", d, d)
  init.dense("empathy_classifier.dense", d, d)
  init.dense("empathy_classifier.out_proj", d, 3)
  init.dense("rationale_classifier", d, 2)
  init.norm("norm", d, weight="alpha", bias="bias")
  return init.params


def to_pytorch(params: dict) -> dict[str, np.ndarray]:
  """Our flat dict -> a PyTorch state dict (Linear weights back to [out, in])."""
  out = {}
  for k, v in params.items():
    v = np.asarray(v, np.float32)
    out[k] = np.ascontiguousarray(v.T) if E.is_linear_weight(k, v) else v
  return out
