"""Model registry: the original's model names mapped to architecture, tokenizer and weights.

Adding a model is adding a `ModelSpec` to `MODELS` below. A spec either names
a hub checkpoint (`hub_name`, loaded with its own config) or carries a transformers `config`
dict: a randomly initialised model (the tiny CPU variants), or, with `weights`, a model this
project trained and ships in the package (`assets/models/`).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from empathy_jax.families import FAMILIES
from empathy_jax.tokenization.loading import PACKAGE_PREFIX

MODEL_ASSETS = os.path.join(os.path.dirname(__file__), "assets", "models")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  """One registry entry.

  Attributes:
    name: registry name, as the original spells it (e.g. GODEL_LARGE).
    family: input format and architecture family: godel (T5), dialogpt (GPT-2) or blenderbot.
    tokenizer: `package:<name>`, a local tokenizer directory or a hub name.
    max_length: longest context/target in tokens, as the original's tokenizer limit.
    hub_name: Hugging Face checkpoint of the pretrained weights, or None for random init.
    config: transformers config fields for random init (model_type included); vocab_size is
      filled in from the tokenizer when absent.
    weights: with `config`, `package:<folder>`: trained parameters shipped in
      `empathy_jax/assets/models/<folder>/params` (an orbax tree, stored in bfloat16 and
      upcast on load); None: random initialisation.
    description: one line for `--help` and README.
  """

  name: str
  family: str
  tokenizer: str
  max_length: int
  hub_name: str | None = None
  config: Mapping[str, Any] | None = None
  weights: str | None = None
  description: str = ""

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"{self.name}: family must be one of {tuple(FAMILIES)}, got "
                       f"{self.family!r}")
    if (self.hub_name is None) == (self.config is None):
      raise ValueError(f"{self.name}: give exactly one of hub_name or config")
    if self.weights is not None and (self.config is None
                                     or not self.weights.startswith(PACKAGE_PREFIX)):
      raise ValueError(f"{self.name}: weights are `package:<folder>`, with a config")

  @property
  def weights_dir(self) -> str | None:
    """The shipped model folder of `weights`, or None."""
    if self.weights is None:
      return None
    return os.path.join(MODEL_ASSETS, self.weights[len(PACKAGE_PREFIX):])


# -- the entries: the original's names, plus tiny random variants for CPU runs and tests --
_T5_TINY = dict(
    model_type="t5", d_model=256, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4,
    num_heads=4, relative_attention_num_buckets=32, relative_attention_max_distance=128,
    dropout_rate=0.1, layer_norm_epsilon=1e-6, feed_forward_proj="relu", tie_word_embeddings=True,
    pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)

# GODEL_TINY's architecture with the dropout it was trained with (configs/godel_small_ed.py).
# Generation starts from the token its decoder was trained to start from: GODEL targets are
# `<PAD> text`, and `<PAD>` is id 32101 in GODEL's shipped tokenizer (T5's own start token, id 0,
# is never a decoder input in training, so its embedding is untrained in a model trained from
# scratch; a pretrained GODEL's is not).
_GODEL_SMALL_ED = dict(_T5_TINY, dropout_rate=0.0, decoder_start_token_id=32101)

_GPT2_TINY = dict(
    model_type="gpt2", n_embd=256, n_layer=4, n_head=4, n_positions=1024,
    activation_function="gelu_new", resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
    layer_norm_epsilon=1e-5, bos_token_id=50256, eos_token_id=50256)

_BLENDERBOT_TINY = dict(
    model_type="blenderbot", d_model=256, encoder_layers=2, decoder_layers=4,
    encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=1024,
    decoder_ffn_dim=1024, max_position_embeddings=128, activation_function="gelu",
    dropout=0.1, attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True,
    pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    forced_eos_token_id=2)

MODELS = (
    ModelSpec("GODEL_SMALL", "godel", "package:godel", 512,
              hub_name="microsoft/GODEL-v1_1-base-seq2seq",
              description="GODEL v1.1 base (T5, 220M)"),
    ModelSpec("GODEL_LARGE", "godel", "package:godel", 512,
              hub_name="microsoft/GODEL-v1_1-large-seq2seq",
              description="GODEL v1.1 large (T5, 770M)"),
    ModelSpec("DialoGPT_SMALL", "dialogpt", "package:dialogpt", 1024,
              hub_name="microsoft/DialoGPT-small", description="DialoGPT small (GPT-2, 117M)"),
    ModelSpec("DialoGPT_MEDIUM", "dialogpt", "package:dialogpt", 1024,
              hub_name="microsoft/DialoGPT-medium", description="DialoGPT medium (GPT-2, 345M)"),
    ModelSpec("DialoGPT_LARGE", "dialogpt", "package:dialogpt", 1024,
              hub_name="microsoft/DialoGPT-large", description="DialoGPT large (GPT-2, 762M)"),
    ModelSpec("BlenderBot", "blenderbot", "facebook/blenderbot-400M-distill", 128,
              hub_name="facebook/blenderbot-400M-distill",
              description="BlenderBot 400M distilled"),
    ModelSpec("GODEL_SMALL_ED", "godel", "package:godel", 512, config=_GODEL_SMALL_ED,
              weights="package:GODEL_SMALL_ED",
              description="GODEL-format T5 (17M) being trained here from scratch on "
              "EmpatheticDialogues (configs/godel_small_ed.py); not finished: see "
              "docs/models.md"),
    ModelSpec("GODEL_TINY", "godel", "package:godel", 512, config=_T5_TINY,
              description="tiny random T5 with GODEL's tokenizer (CPU runs, tests)"),
    ModelSpec("DialoGPT_TINY", "dialogpt", "package:dialogpt", 1024, config=_GPT2_TINY,
              description="tiny random GPT-2 with DialoGPT's tokenizer (CPU runs, tests)"),
    ModelSpec("BlenderBot_TINY", "blenderbot", "package:blenderbot_tiny", 128,
              config=_BLENDERBOT_TINY,
              description="tiny random BlenderBot with a small BlenderBot-format BPE tokenizer"),
)


def all_models() -> dict[str, ModelSpec]:
  return {spec.name: spec for spec in MODELS}


def get_model_spec(name: str) -> ModelSpec:
  models = all_models()
  if name not in models:
    raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(models))}")
  return models[name]
