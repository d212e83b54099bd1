import pytest

from empathy_jax.registry import ModelSpec, all_models, get_model_spec
from empathy_jax.tokenization import load_hf_tokenizer

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
