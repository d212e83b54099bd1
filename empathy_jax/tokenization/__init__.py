"""Tokenizers and the original's per-family input formats."""

from empathy_jax.tokenization.families import (FAMILIES, GODEL_DEFAULT_INSTRUCTION,
                                               DialogueFormat, Encoded, family_for_model_type,
                                               make_format)
from empathy_jax.tokenization.loading import PAD_TOKEN, load_hf_tokenizer, resolve_source
