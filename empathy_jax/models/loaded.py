"""`LoadedModel`: a model ready to use (architecture, parameters, input format, generation
defaults), the one thing every loader returns and every saver takes."""

from __future__ import annotations

import dataclasses
from typing import Any

from empathy_jax import families, sharding
from empathy_jax.models import weights
from empathy_jax.models.api import DialogueModel
from empathy_jax.tokenization.loading import load_hf_tokenizer


@dataclasses.dataclass
class LoadedModel:
  """A model ready to use: architecture, parameters, input format and generation defaults."""

  model: DialogueModel
  params: Any
  fmt: Any  # DialogueFormat
  generation_config: dict
  tokenizer_source: str
  name: str

  @property
  def tokenizer(self):
    return self.fmt.tokenizer


def format_for(family: str, tokenizer_source: str, max_length: int | None):
  """The input format of `family` with the tokenizer from `tokenizer_source`."""
  tok = load_hf_tokenizer(tokenizer_source, family)
  return families.make_format(family, tok, max_length or families.get(family).default_max_length)


def unscanned_numpy_params(loaded: LoadedModel) -> dict:
  params = sharding.to_host(loaded.params)  # gathered from every host when sharded
  return weights.unstack_layers(params) if loaded.model.cfg.scan_layers else params
