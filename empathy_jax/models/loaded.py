"""`LoadedModel`: a model ready to use (architecture, parameters, input format, generation
defaults), the one thing every loader returns and every saver takes."""

from __future__ import annotations

import dataclasses
from typing import Any

from empathy_jax import sharding
from empathy_jax.models import weights
from empathy_jax.models.api import DialogueModel
from empathy_jax.tokenization import load_hf_tokenizer, make_format

DEFAULT_MAX_LENGTH = {"godel": 512, "dialogpt": 1024, "blenderbot": 128}


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
  return make_format(family, tok, max_length or DEFAULT_MAX_LENGTH[family])


def unscanned_numpy_params(loaded: LoadedModel) -> dict:
  params = sharding.to_host(loaded.params)  # gathered from every host when sharded
  return weights.unstack_layers(params) if loaded.model.cfg.scan_layers else params
