"""Model registry: the original's model names mapped to architecture, tokenizer and weights.

Entries live in `configs/models.py`; adding a model is adding an entry there. A spec either names
a hub checkpoint (`hub_name`, loaded with its own config) or carries a transformers `config`
dict for a randomly initialised model (the tiny CPU variants).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from empathy_jax.tokenization.families import FAMILIES


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
    description: one line for `--help` and README.
  """

  name: str
  family: str
  tokenizer: str
  max_length: int
  hub_name: str | None = None
  config: Mapping[str, Any] | None = None
  description: str = ""

  def __post_init__(self):
    if self.family not in FAMILIES:
      raise ValueError(f"{self.name}: family must be one of {FAMILIES}, got {self.family!r}")
    if (self.hub_name is None) == (self.config is None):
      raise ValueError(f"{self.name}: give exactly one of hub_name or config")


def all_models() -> dict[str, ModelSpec]:
  from configs.models import MODELS  # pylint: disable=import-outside-toplevel

  return {spec.name: spec for spec in MODELS}


def get_model_spec(name: str) -> ModelSpec:
  models = all_models()
  if name not in models:
    raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(models))}")
  return models[name]
