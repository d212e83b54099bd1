"""BERT / RoBERTa encoders, sequence classifiers and the EPITOME bi-encoder in JAX, numerically
matching transformers' PyTorch models (and EPITOME's published module layout).

These scorers are inference-only and load weights as published, so they are written as pure
functions over a flat dict of arrays keyed by the PyTorch names (Linear weights transposed once
at load): no name mapping to keep in sync, and `jax.jit` over (params, ids, mask) batches.
"""

from __future__ import annotations

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax.errors import CheckpointError
from empathy_jax.models.layers import activation


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  model_type: str  # "bert" or "roberta"
  num_layers: int
  num_heads: int
  layer_norm_eps: float = 1e-12
  pad_token_id: int = 0
  activation: str = "gelu"


def _ln(x, w, b, eps):
  mean = x.mean(-1, keepdims=True)
  var = jnp.square(x - mean).mean(-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps) * w + b


def _dense(p, prefix, x):
  return x @ p[f"{prefix}.weight"] + p[f"{prefix}.bias"]


def encode(p: dict, prefix: str, cfg: EncoderConfig, ids_BxL, mask_BxL):
  """Last hidden states of a BERT/RoBERTa encoder whose weights are under `prefix`
  (e.g. "roberta" or "seeker_encoder.roberta")."""
  e = f"{prefix}.embeddings"
  if cfg.model_type == "roberta":  # positions count real tokens after padding_idx
    not_pad = (ids_BxL != cfg.pad_token_id).astype(jnp.int32)
    pos = jnp.cumsum(not_pad, axis=1) * not_pad + cfg.pad_token_id
  else:
    pos = jnp.broadcast_to(jnp.arange(ids_BxL.shape[1]), ids_BxL.shape)
  x = (p[f"{e}.word_embeddings.weight"][ids_BxL] + p[f"{e}.position_embeddings.weight"][pos]
       + p[f"{e}.token_type_embeddings.weight"][0])
  x = _ln(x, p[f"{e}.LayerNorm.weight"], p[f"{e}.LayerNorm.bias"], cfg.layer_norm_eps)
  bias = jnp.where(mask_BxL[:, None, None, :] > 0, 0.0, jnp.finfo(jnp.float32).min)
  act = activation(cfg.activation)
  b, l, d = x.shape
  h = cfg.num_heads
  for i in range(cfg.num_layers):
    lp = f"{prefix}.encoder.layer.{i}"
    split = lambda t: t.reshape(b, l, h, d // h)
    q = split(_dense(p, f"{lp}.attention.self.query", x))
    k = split(_dense(p, f"{lp}.attention.self.key", x))
    v = split(_dense(p, f"{lp}.attention.self.value", x))
    scores = jnp.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(d // h) + bias
    ctx = jnp.einsum("bhqs,bshk->bqhk", jax.nn.softmax(scores, -1), v).reshape(b, l, d)
    x = _ln(x + _dense(p, f"{lp}.attention.output.dense", ctx),
            p[f"{lp}.attention.output.LayerNorm.weight"],
            p[f"{lp}.attention.output.LayerNorm.bias"], cfg.layer_norm_eps)
    inter = act(_dense(p, f"{lp}.intermediate.dense", x))
    x = _ln(x + _dense(p, f"{lp}.output.dense", inter), p[f"{lp}.output.LayerNorm.weight"],
            p[f"{lp}.output.LayerNorm.bias"], cfg.layer_norm_eps)
  return x


def classify(p: dict, cfg: EncoderConfig, ids_BxL, mask_BxL):
  """Logits of transformers' BertForSequenceClassification / RobertaForSequenceClassification."""
  x = encode(p, cfg.model_type, cfg, ids_BxL, mask_BxL)[:, 0]
  if cfg.model_type == "roberta":
    return _dense(p, "classifier.out_proj", jnp.tanh(_dense(p, "classifier.dense", x)))
  pooled = jnp.tanh(_dense(p, "bert.pooler.dense", x))
  return _dense(p, "classifier", pooled)


def epitome(p: dict, cfg: EncoderConfig, seeker_ids, seeker_mask, response_ids, response_mask):
  """EPITOME's level logits (see `epitome_outputs`)."""
  return epitome_outputs(p, cfg, seeker_ids, seeker_mask, response_ids, response_mask)[0]


def epitome_outputs(p: dict, cfg: EncoderConfig, seeker_ids, seeker_mask, response_ids,
                    response_mask):
  """EPITOME's bi-encoder: responder states attend (one head, scores / sqrt(d)) to the seeker
  states, residual, then the empathy head on the first token (level logits [B, 3]) and the
  rationale head on every response token (logits [B, T, 2]). Seeker padding is masked: the
  original scored one example at a time, so its attention never saw padding."""
  s = encode(p, "seeker_encoder.roberta", cfg, seeker_ids, seeker_mask)
  r = encode(p, "responder_encoder.roberta", cfg, response_ids, response_mask)
  q = _dense(p, "attn.q_linear", r)
  k = _dense(p, "attn.k_linear", s)
  v = _dense(p, "attn.v_linear", s)
  scores = jnp.einsum("bqd,bsd->bqs", q, k) / np.sqrt(q.shape[-1])
  scores = jnp.where(seeker_mask[:, None, :] > 0, scores, jnp.finfo(jnp.float32).min)
  r = r + _dense(p, "attn.out", jax.nn.softmax(scores, -1) @ v)
  h = jax.nn.relu(_dense(p, "empathy_classifier.dense", r[:, 0]))
  rationale = _dense(p, "rationale_classifier", r) if "rationale_classifier.weight" in p \
      else None
  return _dense(p, "empathy_classifier.out_proj", h), rationale


_LINEAR = re.compile(r"(query|key|value|dense|classifier|out_proj|q_linear|k_linear|v_linear|"
                     r"attn\.out|rationale_classifier)\.weight$")


def prepare_params(state: dict[str, np.ndarray]) -> dict[str, jax.Array]:
  """PyTorch state dict -> our flat dict: Linear weights transposed to [in, out]."""
  out = {}
  for k, v in state.items():
    v = np.asarray(v, np.float32)
    out[k] = jnp.asarray(v.T if is_linear_weight(k, v) else v)
  return out


def is_linear_weight(name: str, value) -> bool:
  """Whether a state-dict entry is a Linear weight (stored transposed here)."""
  return bool(_LINEAR.search(name)) and np.ndim(value) == 2 and "embeddings" not in name


def count_layers(state: dict, prefix: str) -> int:
  found = {int(m.group(1)) for k in state
           for m in [re.match(rf"{re.escape(prefix)}\.encoder\.layer\.(\d+)\.", k)] if m}
  if not found:
    raise CheckpointError(f"no encoder layers found under {prefix!r}")
  return max(found) + 1


def require(state: dict, keys: list[str], source: str) -> None:
  missing = [k for k in keys if k not in state]
  if missing:
    raise CheckpointError(f"{source}: missing weights ({len(missing)}): "
                          f"{', '.join(missing[:10])}")
