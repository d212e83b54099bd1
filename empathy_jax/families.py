"""One record per model family: everything the code knows about a family, in one place.

A family's own code is its modules (the Flax model and config in `models/`, the weight-name
rules in `models/weights.py`, the original's input format in `tokenization/families.py`);
its record below ties them together with the facts the loaders, the exporters and the
tokenizer need. Adding a family is its modules plus one record in `FAMILIES`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from empathy_jax.models import weights
from empathy_jax.models.blenderbot import BlenderbotModel
from empathy_jax.models.configs import BlenderbotConfig, GPT2Config, RuntimeOptions, T5Config
from empathy_jax.models.gpt2 import GPT2Model
from empathy_jax.models.t5 import T5Model
from empathy_jax.tokenization.families import (BlenderBotFormat, DialogueFormat, DialoGPTFormat,
                                               GodelFormat)

Path = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Family:
  """A model family.

  name: our name (the original's families: godel, dialogpt, blenderbot).
  model_type: the transformers config's `model_type` of its checkpoints.
  config_cls / module_cls: our config dataclass (`from_hf`, `hf_dict`) and Flax module.
  format_cls: the original's input format for it.
  hidden_size: cfg -> the width of the states heads read.
  decoder_cache: cfg -> (decoder layers, heads, head width) of the decoding cache.
  weight_rules: cfg -> `weights.WeightMap` (transformers names <-> our parameter paths).
  tokenizer_class / tokenizer_module: the slow transformers tokenizer its folders declare,
    imported directly (AutoTokenizer's import costs seconds at every start).
  tokenizer_appends_eos: the tokenizer must end each text with EOS (BlenderBot's, whose
    post-processor does not).
  default_max_length: input tokens when a folder or registry entry gives none.
  default_tokenizer: the tokenizer of a checkpoint folder that carries none (None: required).
  vocab_params: cfg -> (path, axis, fill) of every parameter with a vocabulary axis, grown
    when a tokenizer adds tokens ("mean": the mean of the old rows; "zeros").
  torch_vocab_key: the transformers state-dict entry whose rows are the vocabulary.
  original_class: the original's `model_cls` / `tokenizer_cls` name in a Lightning `.ckpt`.
  original_class_keys: lower-case substrings that identify its class name when reading one.
  original_versions: the original's `version` kwarg -> registry name; the first is the
    default for a version it does not name.
  """

  name: str
  model_type: str
  config_cls: type
  module_cls: type
  format_cls: type[DialogueFormat]
  hidden_size: Callable[[Any], int]
  decoder_cache: Callable[[Any], tuple[int, int, int]]
  weight_rules: Callable[[Any], weights.WeightMap]
  tokenizer_class: str
  tokenizer_module: str
  default_max_length: int
  default_tokenizer: str | None
  vocab_params: Callable[[Any], tuple[tuple[Path, int, str], ...]]
  torch_vocab_key: str
  original_class: str
  original_class_keys: tuple[str, ...]
  original_versions: Mapping[str, str]
  tokenizer_appends_eos: bool = False


def _t5_vocab_params(cfg):
  untied = () if cfg.tie_lm_head else ((("lm_head", "kernel"), 1, "mean"),)
  return ((("shared", "embedding"), 0, "mean"), *untied)


GODEL = Family(
    name="godel", model_type="t5", config_cls=T5Config, module_cls=T5Model,
    format_cls=GodelFormat, hidden_size=lambda cfg: cfg.d_model,
    decoder_cache=lambda cfg: (cfg.num_decoder_layers, cfg.num_heads, cfg.d_kv),
    weight_rules=weights.t5_rules, tokenizer_class="T5Tokenizer",
    tokenizer_module="transformers.models.t5.tokenization_t5", default_max_length=512,
    default_tokenizer="package:godel", vocab_params=_t5_vocab_params,
    torch_vocab_key="shared.weight", original_class="GODEL", original_class_keys=("godel",),
    original_versions={"base": "GODEL_SMALL", "large": "GODEL_LARGE", "tiny": "GODEL_TINY"})

DIALOGPT = Family(
    name="dialogpt", model_type="gpt2", config_cls=GPT2Config, module_cls=GPT2Model,
    format_cls=DialoGPTFormat, hidden_size=lambda cfg: cfg.n_embd,
    decoder_cache=lambda cfg: (cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head),
    weight_rules=weights.gpt2_rules, tokenizer_class="GPT2Tokenizer",
    tokenizer_module="transformers.models.gpt2.tokenization_gpt2", default_max_length=1024,
    default_tokenizer="package:dialogpt",
    vocab_params=lambda cfg: ((("wte", "embedding"), 0, "mean"),),
    torch_vocab_key="transformer.wte.weight", original_class="DialoGPT",
    original_class_keys=("dialogpt", "gpt"),
    original_versions={"small": "DialoGPT_SMALL", "medium": "DialoGPT_MEDIUM",
                       "large": "DialoGPT_LARGE", "tiny": "DialoGPT_TINY"})

BLENDERBOT = Family(
    name="blenderbot", model_type="blenderbot", config_cls=BlenderbotConfig,
    module_cls=BlenderbotModel, format_cls=BlenderBotFormat, hidden_size=lambda cfg: cfg.d_model,
    decoder_cache=lambda cfg: (cfg.decoder_layers, cfg.decoder_attention_heads,
                               cfg.d_model // cfg.decoder_attention_heads),
    weight_rules=weights.blenderbot_rules,
    tokenizer_class="BlenderbotTokenizer",
    tokenizer_module="transformers.models.blenderbot.tokenization_blenderbot",
    tokenizer_appends_eos=True, default_max_length=128, default_tokenizer=None,
    vocab_params=lambda cfg: ((("shared", "embedding"), 0, "mean"),
                              (("final_logits_bias",), 0, "zeros")),
    torch_vocab_key="model.shared.weight", original_class="BlenderBot",
    original_class_keys=("blender",),
    original_versions={"": "BlenderBot", "tiny": "BlenderBot_TINY"})

FAMILIES: dict[str, Family] = {f.name: f for f in (GODEL, DIALOGPT, BLENDERBOT)}


def get(name: str) -> Family:
  if name not in FAMILIES:
    raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
  return FAMILIES[name]


def of(cfg) -> Family:
  """The family of a model config."""
  return get(cfg.family)


def for_model_type(model_type: str) -> Family:
  for family in FAMILIES.values():
    if family.model_type == model_type:
      return family
  raise ValueError(f"unknown architecture model_type={model_type!r}; supported: "
                   f"{sorted(f.model_type for f in FAMILIES.values())}")


def weight_map(cfg) -> weights.WeightMap:
  """The transformers <-> Flax parameter names of this config (its family's rules)."""
  return of(cfg).weight_rules(cfg)


def config_from_hf(hf: Mapping[str, Any], opts: RuntimeOptions = RuntimeOptions()):
  """Our config of a transformers config (dict), by its `model_type`."""
  return for_model_type(hf.get("model_type")).config_cls.from_hf(hf, opts)


def make_format(family: str, tokenizer, max_length: int | None = None) -> DialogueFormat:
  """The family's input format over `tokenizer` (max_length: the tokenizer's by default)."""
  cls = get(family).format_cls
  return cls(tokenizer, tokenizer.model_max_length if max_length is None else max_length)
