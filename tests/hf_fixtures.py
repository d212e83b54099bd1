"""Tiny random transformers PyTorch models saved in Hugging Face format, for parity tests."""

import os
import sys
import types

import numpy as np

from empathy_jax.registry import get_model_spec
from empathy_jax.families import make_format
from empathy_jax.tokenization.loading import load_hf_tokenizer

TINY_CONFIGS = {
    "godel": dict(model_type="t5", d_model=32, d_kv=8, d_ff=64, num_layers=2,
                  num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=32,
                  relative_attention_max_distance=128, feed_forward_proj="relu",
                  dropout_rate=0.1, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0),
    "godel_gated": dict(model_type="t5", d_model=32, d_kv=8, d_ff=64, num_layers=2,
                        num_decoder_layers=3, num_heads=4, feed_forward_proj="gated-gelu",
                        dropout_rate=0.1, pad_token_id=0, eos_token_id=1,
                        decoder_start_token_id=0),
    # T5 v1.1 (GODEL's style) as transformers 5 saves it: tied head, no output rescaling.
    "godel_v11": dict(model_type="t5", d_model=32, d_kv=8, d_ff=64, num_layers=3,
                      num_decoder_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
                      tie_word_embeddings=False, dropout_rate=0.1, pad_token_id=0,
                      eos_token_id=1, decoder_start_token_id=0),
    "dialogpt": dict(model_type="gpt2", n_embd=32, n_layer=2, n_head=4, n_positions=1024,
                     bos_token_id=50256, eos_token_id=50256),
    "blenderbot": dict(model_type="blenderbot", d_model=32, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                       decoder_ffn_dim=64, max_position_embeddings=128, pad_token_id=0,
                       bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
                       scale_embedding=True, forced_eos_token_id=2),
}
REGISTRY_NAME = {"godel": "GODEL_TINY", "godel_gated": "GODEL_TINY", "godel_v11": "GODEL_TINY",
                 "dialogpt": "DialoGPT_TINY", "blenderbot": "BlenderBot_TINY"}


def family_of(kind):
  return "godel" if kind.startswith("godel") else kind


def fmt_for(kind):
  spec = get_model_spec(REGISTRY_NAME[kind])
  tok = load_hf_tokenizer(spec.tokenizer, spec.family)
  return make_format(spec.family, tok, spec.max_length)


def build_torch_model(kind, vocab_size=None, seed=0):
  import torch
  import transformers

  fmt = fmt_for(kind)
  cfg = dict(TINY_CONFIGS[kind])
  model_type = cfg.pop("model_type")
  cfg["vocab_size"] = vocab_size or fmt.vocab_size
  config = transformers.AutoConfig.for_model(model_type, **cfg)
  torch.manual_seed(seed)
  cls = {"t5": transformers.T5ForConditionalGeneration,
         "gpt2": transformers.GPT2LMHeadModel,
         "blenderbot": transformers.BlenderbotForConditionalGeneration}[model_type]
  model = cls(config)
  with torch.no_grad():  # random non-zero biases so they are checked too
    for name, p in model.named_parameters():
      if name.endswith("bias") or "final_logits_bias" in name:
        p.normal_(0, 0.02)
  if hasattr(model, "final_logits_bias"):
    model.final_logits_bias.normal_(0, 0.02)
  model.eval()
  return model, fmt


def save_torch_model(kind, directory, vocab_size=None, seed=0, with_tokenizer=True):
  model, fmt = build_torch_model(kind, vocab_size, seed)
  os.makedirs(directory, exist_ok=True)
  model.save_pretrained(directory)
  if with_tokenizer:
    fmt.tokenizer.save_pretrained(directory)
  return model, fmt


def real_batch(fmt, split, n=6, offset=0):
  from empathy_jax.data.pipeline import make_batcher, tokenize_split

  table = tokenize_split(split.select(range(offset, offset + n)), fmt)
  return next(make_batcher(fmt, n).batches(table))


def torch_target_logprobs(logits_BxTxV, batch):
  """log p(target t) from logits aligned as `torch_logits` returns them."""
  import torch

  logp = torch.log_softmax(torch.from_numpy(logits_BxTxV).double(), -1).numpy()
  return np.take_along_axis(logp, np.asarray(batch.target_ids_BxT)[..., None], -1)[..., 0]


def torch_logits(model, batch, is_encoder_decoder):
  """transformers' logits aligned with our ModelOutput: row t predicts target token t."""
  import torch

  t = lambda x: torch.from_numpy(np.asarray(x)).long()
  with torch.no_grad():
    if is_encoder_decoder:
      out = model(input_ids=t(batch.context_ids_BxC), attention_mask=t(batch.context_mask_BxC),
                  decoder_input_ids=t(batch.target_ids_BxT),
                  decoder_attention_mask=t(batch.target_mask_BxT), output_hidden_states=True)
      logits = out.logits.numpy()
      shifted = np.concatenate([np.zeros_like(logits[:, :1]), logits[:, :-1]], axis=1)
      return shifted, out.decoder_hidden_states[-1].numpy()
    ids = torch.cat([t(batch.context_ids_BxC), t(batch.target_ids_BxT)], 1)
    mask = torch.cat([t(batch.context_mask_BxC), t(batch.target_mask_BxT)], 1)
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, output_hidden_states=True)
    c = batch.context_ids_BxC.shape[1]
    return out.logits[:, c - 1:-1].numpy(), out.hidden_states[-1][:, c:].numpy()


def registry_torch_model(name, seed=0):
  """transformers' PyTorch model with a registry (tiny) config and random weights, and its
  format."""
  import torch
  import transformers

  from empathy_jax.registry import get_model_spec

  spec = get_model_spec(name)
  tok = load_hf_tokenizer(spec.tokenizer, spec.family)
  fmt = make_format(spec.family, tok, spec.max_length)
  cfg = dict(spec.config, vocab_size=fmt.vocab_size)
  config = transformers.AutoConfig.for_model(cfg.pop("model_type"), **cfg)
  torch.manual_seed(seed)
  cls = {"godel": transformers.T5ForConditionalGeneration,
         "dialogpt": transformers.GPT2LMHeadModel,
         "blenderbot": transformers.BlenderbotForConditionalGeneration}[spec.family]
  return cls(config).eval(), fmt


def write_original_ckpt(torch_model, path, model_cls_name, version, extra_state=None):
  """A Lightning checkpoint as the original writes it: its own classes pickled by reference;
  `extra_state` adds state_dict entries (a reward model's `linear.*` and `mean_offset`)."""
  import torch

  module = types.ModuleType("automating_empathy_models")
  cls = type(model_cls_name, (), {"__module__": module.__name__})
  module.__dict__[model_cls_name] = cls
  sys.modules[module.__name__] = module
  try:
    state = {f"model.model.{k}": v for k, v in torch_model.state_dict().items()}
    state.update(extra_state or {})
    torch.save({"state_dict": state,
                "hyper_parameters": {"config": {"model_cls": cls,
                                                "model_kwargs": {"version": version},
                                                "tokenizer_cls": cls, "tokenizer_kwargs": {}},
                                     "batch_size": 8, "initial_lr": 1e-5,
                                     "data_erasure_level": 0.3},
                "epoch": 3, "global_step": 100}, path)
  finally:
    del sys.modules[module.__name__]
