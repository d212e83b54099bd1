"""Generation settings with the original's flag names and Hugging Face `generate` semantics.

Resolution order, as HF generate: flags the user gave > the checkpoint's `generation_config.json`
> HF's defaults. So BlenderBot's published config (10 beams, min_length 20, length_penalty 0.65,
no-repeat 3-grams) applies unless overridden, exactly as it did in the original's results.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

HF_DEFAULT_MAX_LENGTH = 20


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
  """Static decoding settings (hashable: part of the jit cache key).

  max_new_tokens: tokens generated after the prompt / start token.
  beam_width: beams (1 = greedy or sampling); length_alpha: HF's `length_penalty` (scores are
    divided by length ** length_alpha); early_stopping: HF's beam stopping rule (False, True or
    "never").
  sample / temperature / top_k / top_p: multinomial sampling and HF's warpers (top_k 50 is HF's
    default when sampling).
  min_length: HF's `min_length` (counts the decoder start token, or the prompt for decoder-only
    models); no_repeat_ngram_size / encoder_no_repeat_ngram_size: HF's n-gram bans;
    forced_eos_token_id: EOS forced at the last position.
  eos_token_id / pad_token_id / decoder_start_token_id: from the model config.
  """

  max_new_tokens: int = 100
  beam_width: int = 1
  length_alpha: float = 1.0
  early_stopping: Any = False
  sample: bool = False
  temperature: float = 1.0
  top_k: int = 50
  top_p: float = 1.0
  min_length: int = 0
  no_repeat_ngram_size: int = 0
  encoder_no_repeat_ngram_size: int = 0
  forced_eos_token_id: int | None = None
  eos_token_id: int | None = None
  pad_token_id: int = 0
  decoder_start_token_id: int = 0

  def __post_init__(self):
    if self.max_new_tokens < 1:
      raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
    if self.beam_width < 1:
      raise ValueError(f"beam_width must be >= 1, got {self.beam_width}")
    if self.sample and not 0 < self.temperature < float("inf"):
      raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
    if self.top_k < 0:
      raise ValueError(f"top_k must be >= 0, got {self.top_k}")


# The generation flags a user sets for a test (test.py's; the original's names). Left out, each
# takes the checkpoint's generation_config.
USER_FLAGS = ("beam_width", "sample", "temperature", "top_p", "top_k", "max_new_tokens",
              "length_alpha")

# Flag names of the original (and ours) -> HF generation_config keys.
_FLAG_TO_HF = {"beam_width": "num_beams", "length_alpha": "length_penalty", "sample": "do_sample",
               "temperature": "temperature", "top_k": "top_k", "top_p": "top_p",
               "min_length": "min_length", "no_repeat_ngram_size": "no_repeat_ngram_size",
               "encoder_no_repeat_ngram_size": "encoder_no_repeat_ngram_size",
               "forced_eos_token_id": "forced_eos_token_id", "early_stopping": "early_stopping"}


def resolve(user: Mapping[str, Any], checkpoint: Mapping[str, Any], model_cfg,
            prompt_length: int = 0) -> GenerationConfig:
  """Merges user flags (only those given; None means not given) with the checkpoint's
  generation_config and the model config, as HF generate does."""
  user = {k: v for k, v in user.items() if v is not None}
  ckpt = dict(checkpoint or {})
  hf_cfg = model_cfg.hf
  get = lambda key, default=None: ckpt.get(key, hf_cfg.get(key, default))
  values: dict[str, Any] = {}
  for flag, key in _FLAG_TO_HF.items():
    if flag in user:
      values[flag] = user[flag]
    elif get(key) is not None:
      values[flag] = get(key)
  if not model_cfg.is_encoder_decoder and "encoder_no_repeat_ngram_size" in values:
    values.pop("encoder_no_repeat_ngram_size")
  if "max_new_tokens" in user:
    values["max_new_tokens"] = user["max_new_tokens"]
  elif ckpt.get("max_new_tokens") is not None:
    values["max_new_tokens"] = ckpt["max_new_tokens"]
  else:  # HF: max_length counts the start token (enc-dec) or the prompt (decoder-only)
    max_length = get("max_length") or HF_DEFAULT_MAX_LENGTH
    start = 1 if model_cfg.is_encoder_decoder else prompt_length
    values["max_new_tokens"] = max(1, max_length - start)
  eos = get("eos_token_id")
  if isinstance(eos, (list, tuple)):
    eos = eos[0]
  values["eos_token_id"] = eos
  pad = get("pad_token_id")
  values["pad_token_id"] = pad if pad is not None else (eos if eos is not None else 0)
  if model_cfg.is_encoder_decoder:
    values["decoder_start_token_id"] = get("decoder_start_token_id", 0)
  values["sample"] = bool(values.get("sample", False))
  return GenerationConfig(**values)
