import importlib

import pytest

from empathy_jax import families
from empathy_jax.registry import ModelSpec, all_models, get_model_spec
from empathy_jax.tokenization.loading import load_hf_tokenizer

ORIGINAL_NAMES = {"GODEL_SMALL": "microsoft/GODEL-v1_1-base-seq2seq",
                  "GODEL_LARGE": "microsoft/GODEL-v1_1-large-seq2seq",
                  "DialoGPT_SMALL": "microsoft/DialoGPT-small",
                  "DialoGPT_MEDIUM": "microsoft/DialoGPT-medium",
                  "DialoGPT_LARGE": "microsoft/DialoGPT-large",
                  "BlenderBot": "facebook/blenderbot-400M-distill"}


def test_original_names_map_to_their_hub_checkpoints():
  for name, hub in ORIGINAL_NAMES.items():
    assert get_model_spec(name).hub_name == hub


def test_every_entry_parses_and_tiny_tokenizers_load_offline():
  models = all_models()
  assert {"GODEL_TINY", "DialoGPT_TINY", "BlenderBot_TINY"} <= set(models)
  for spec in models.values():
    assert spec.max_length > 0
    if spec.config is not None:
      tok = load_hf_tokenizer(spec.tokenizer, spec.family)
      assert len(tok) > 1000


def test_unknown_name_lists_known_names():
  with pytest.raises(KeyError, match="GODEL_LARGE.*") as e:
    get_model_spec("GODEL_HUGE")
  assert "GODEL_TINY" in str(e.value)


def test_spec_rejects_bad_entries():
  with pytest.raises(ValueError, match="family"):
    ModelSpec("X", "llama", "package:godel", 10, hub_name="x")
  with pytest.raises(ValueError, match="exactly one"):
    ModelSpec("X", "godel", "package:godel", 10)


def test_each_family_record_names_pieces_of_that_family():
  """The record ties a family's modules together: each piece it names belongs to it, and the
  names it maps to (registry entries, tokenizer classes) exist."""
  assert list(families.FAMILIES) == ["godel", "dialogpt", "blenderbot"]
  for name, family in families.FAMILIES.items():
    assert family.config_cls.family == family.format_cls.family == name
    assert families.for_model_type(family.model_type) is family
    assert hasattr(importlib.import_module(family.tokenizer_module), family.tokenizer_class)
    for registry_name in family.original_versions.values():
      assert get_model_spec(registry_name).family == name
    spec = get_model_spec(next(n for n in family.original_versions.values() if "TINY" in n))
    cfg = families.config_from_hf(dict(spec.config, vocab_size=100))
    assert families.of(cfg) is family and family.hidden_size(cfg) > 0
    assert family.weight_rules(cfg).family == name
  with pytest.raises(ValueError, match="model_type='llama'"):
    families.for_model_type("llama")
