"""Architecture configs read from (and written back to) transformers' `config.json` dicts.

Each family's dataclass holds what its Flax module needs plus runtime options (compute dtype,
dropout override, remat, layer scan). `hf_json` keeps the original dict so export writes back
every field the checkpoint had.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Mapping

import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class RuntimeOptions:
  """How to run a model, independent of its weights.

  dtype: compute dtype ("float32" or "bfloat16"); parameters stay float32.
  dropout_rate: overrides the checkpoint's dropout when set (the original's effective dropout is
    the checkpoint's own, see ORIGINAL_FORMATS.md, so None is the faithful default).
  remat: rematerialise each block in the backward pass (less memory, more compute).
  scan_layers: `nn.scan` over layers (faster compiles for deep models; params stacked).
  """

  dtype: str = "float32"
  dropout_rate: float | None = None
  remat: bool = False
  scan_layers: bool = False


def _dtype(name: str):
  if name not in ("float32", "bfloat16"):
    raise ValueError(f"dtype must be float32 or bfloat16, got {name!r}")
  return jnp.float32 if name == "float32" else jnp.bfloat16


@dataclasses.dataclass(frozen=True)
class _Base:
  hf_json: str
  dtype: Any
  remat: bool
  scan_layers: bool

  @property
  def hf(self) -> dict[str, Any]:
    return json.loads(self.hf_json)

  def hf_dict(self) -> dict[str, Any]:
    """The config dict to export: the original fields with the current vocabulary size."""
    d = self.hf
    d["vocab_size"] = self.vocab_size  # type: ignore[attr-defined]
    return d

  def replace(self, **kw):
    return dataclasses.replace(self, **kw)


def _runtime(hf: Mapping[str, Any], opts: RuntimeOptions) -> dict[str, Any]:
  return dict(hf_json=json.dumps(dict(hf), sort_keys=True), dtype=_dtype(opts.dtype),
              remat=opts.remat, scan_layers=opts.scan_layers)


@dataclasses.dataclass(frozen=True)
class T5Config(_Base):
  vocab_size: int
  d_model: int
  d_kv: int
  d_ff: int
  num_layers: int
  num_decoder_layers: int
  num_heads: int
  relative_attention_num_buckets: int
  relative_attention_max_distance: int
  dropout_rate: float
  layer_norm_epsilon: float
  dense_act_fn: str
  is_gated_act: bool
  tie_lm_head: bool
  scale_decoder_outputs: bool
  pad_token_id: int
  eos_token_id: int
  decoder_start_token_id: int

  family = "godel"
  is_encoder_decoder = True

  def hf_dict(self) -> dict[str, Any]:
    """Both fields explicit, so transformers 5 reads back the same function (and 4 reads an
    untied head, which transformers 5 cannot hold: it ties every T5 LM head)."""
    d = super().hf_dict()
    d["tie_word_embeddings"] = self.tie_lm_head
    d["scale_decoder_outputs"] = self.scale_decoder_outputs
    return d

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any], opts: RuntimeOptions = RuntimeOptions()):
    proj = hf.get("feed_forward_proj", "relu")
    gated = proj.startswith("gated-")
    act = proj.split("-")[-1]
    act = "gelu_new" if act == "gelu" else act  # transformers maps gated-gelu to gelu_new
    # Two conventions for T5 v1.1 (GODEL's family: no d_model**-0.5 rescaling of the decoder
    # output). transformers 4 wrote `tie_word_embeddings: false` plus a separate lm_head.weight
    # and derived the rescaling from it; transformers 5 always ties T5's LM head and writes
    # `scale_decoder_outputs` on its own. Read each field for what it says.
    tie = hf.get("tie_word_embeddings", True) is not False
    scale = hf["scale_decoder_outputs"] if hf.get("scale_decoder_outputs") is not None else tie
    return cls(
        vocab_size=hf["vocab_size"], d_model=hf.get("d_model", 512), d_kv=hf.get("d_kv", 64),
        d_ff=hf.get("d_ff", 2048), num_layers=hf.get("num_layers", 6),
        num_decoder_layers=hf.get("num_decoder_layers") or hf.get("num_layers", 6),
        num_heads=hf.get("num_heads", 8),
        relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
        relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
        dropout_rate=opts.dropout_rate if opts.dropout_rate is not None
        else hf.get("dropout_rate", 0.1),
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6), dense_act_fn=act,
        is_gated_act=gated, tie_lm_head=tie, scale_decoder_outputs=bool(scale),
        pad_token_id=hf.get("pad_token_id", 0), eos_token_id=hf.get("eos_token_id", 1),
        decoder_start_token_id=hf.get("decoder_start_token_id", 0), **_runtime(hf, opts))


@dataclasses.dataclass(frozen=True)
class GPT2Config(_Base):
  vocab_size: int
  n_embd: int
  n_layer: int
  n_head: int
  n_positions: int
  n_inner: int
  activation_function: str
  dropout_rate: float
  attn_dropout_rate: float
  layer_norm_epsilon: float
  bos_token_id: int
  eos_token_id: int

  family = "dialogpt"
  is_encoder_decoder = False

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any], opts: RuntimeOptions = RuntimeOptions()):
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
      if hf.get(flag):
        raise ValueError(f"GPT-2 option {flag}=True is not supported")
    if hf.get("scale_attn_weights") is False:
      raise ValueError("GPT-2 option scale_attn_weights=False is not supported")
    d = hf.get("n_embd", 768)
    drop = opts.dropout_rate
    return cls(
        vocab_size=hf["vocab_size"], n_embd=d, n_layer=hf.get("n_layer", 12),
        n_head=hf.get("n_head", 12), n_positions=hf.get("n_positions", 1024),
        n_inner=hf.get("n_inner") or 4 * d,
        activation_function=hf.get("activation_function", "gelu_new"),
        dropout_rate=drop if drop is not None else hf.get("resid_pdrop", 0.1),
        attn_dropout_rate=drop if drop is not None else hf.get("attn_pdrop", 0.1),
        layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-5),
        bos_token_id=hf.get("bos_token_id", 50256), eos_token_id=hf.get("eos_token_id", 50256),
        **_runtime(hf, opts))


@dataclasses.dataclass(frozen=True)
class BlenderbotConfig(_Base):
  vocab_size: int
  d_model: int
  encoder_layers: int
  decoder_layers: int
  encoder_attention_heads: int
  decoder_attention_heads: int
  encoder_ffn_dim: int
  decoder_ffn_dim: int
  max_position_embeddings: int
  activation_function: str
  dropout_rate: float
  attention_dropout: float
  activation_dropout: float
  scale_embedding: bool
  pad_token_id: int
  bos_token_id: int
  eos_token_id: int
  decoder_start_token_id: int
  init_std: float

  family = "blenderbot"
  is_encoder_decoder = True

  @classmethod
  def from_hf(cls, hf: Mapping[str, Any], opts: RuntimeOptions = RuntimeOptions()):
    if hf.get("normalize_before", True) is False:
      raise ValueError("BlenderBot with normalize_before=False is not supported")
    drop = opts.dropout_rate
    return cls(
        vocab_size=hf["vocab_size"], d_model=hf.get("d_model", 2560),
        encoder_layers=hf.get("encoder_layers", 2), decoder_layers=hf.get("decoder_layers", 24),
        encoder_attention_heads=hf.get("encoder_attention_heads", 32),
        decoder_attention_heads=hf.get("decoder_attention_heads", 32),
        encoder_ffn_dim=hf.get("encoder_ffn_dim", 10240),
        decoder_ffn_dim=hf.get("decoder_ffn_dim", 10240),
        max_position_embeddings=hf.get("max_position_embeddings", 128),
        activation_function=hf.get("activation_function", "gelu"),
        dropout_rate=drop if drop is not None else hf.get("dropout", 0.1),
        attention_dropout=drop if drop is not None else hf.get("attention_dropout", 0.0),
        activation_dropout=drop if drop is not None else hf.get("activation_dropout", 0.0),
        scale_embedding=hf.get("scale_embedding", False), pad_token_id=hf.get("pad_token_id", 0),
        bos_token_id=hf.get("bos_token_id", 1), eos_token_id=hf.get("eos_token_id", 2),
        decoder_start_token_id=hf.get("decoder_start_token_id", 1),
        init_std=hf.get("init_std", 0.02), **_runtime(hf, opts))
