"""Loads Hugging Face tokenizers the way the original project set them up.

Sources: `package:<name>` (files shipped in `assets/`, so tiny models work offline), a local
directory, or a hub name. Every tokenizer then gets the original's pad token through
`add_special_tokens({"pad_token": "<PAD>"})`: GODEL already holds `<PAD>` (32101) so its vocabulary
stays 32102; GPT-2 and BlenderBot gain one token, which is why the original's checkpoints have
`len(tokenizer)` rows in their embeddings.
"""

from __future__ import annotations

import functools
import importlib
import json
import os

from empathy_jax import families

PAD_TOKEN = "<PAD>"
PACKAGE_PREFIX = "package:"
ASSETS = os.path.join(os.path.dirname(__file__), "assets")


def resolve_source(source: str) -> str:
  """Maps `package:<name>` to its shipped folder; other sources pass through."""
  if source.startswith(PACKAGE_PREFIX):
    path = os.path.join(ASSETS, source[len(PACKAGE_PREFIX):])
    if not os.path.isdir(path):
      known = sorted(os.listdir(ASSETS))
      raise ValueError(f"unknown packaged tokenizer {source!r}; known: {known}")
    return path
  return source


def _ensure_eos_appended(tok) -> None:
  """BlenderBot's tokenizer appends `</s>` to every encoding (transformers 4 did this in
  `build_inputs_with_special_tokens`); transformers 5 builds it from vocab/merges without a post
  processor, so restore that behaviour on the backend."""
  from tokenizers import processors

  probe = tok("a").input_ids
  if probe and probe[-1] == tok.eos_token_id:
    return
  tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
      single=f"$A {tok.eos_token}", pair=f"$A {tok.eos_token} $B {tok.eos_token}",
      special_tokens=[(tok.eos_token, tok.eos_token_id)])


# The families' tokenizer classes, by the names a saved folder declares. Importing one directly
# takes ~1 s; `AutoTokenizer` imports transformers' configuration code, which imports torch:
# ~3 s at every launcher's start.
_DIRECT_CLASSES = {f.tokenizer_class: f for f in families.FAMILIES.values()}


def _read_json(path: str) -> dict:
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _direct_class(path: str):
  """The tokenizer class `AutoTokenizer` would pick for a local folder that declares one of the
  families' classes (and no custom code), imported without `AutoTokenizer`; None otherwise
  (hub names, other classes), where `AutoTokenizer` decides."""
  if not os.path.isdir(path):
    return None
  declared = _read_json(os.path.join(path, "tokenizer_config.json"))
  name = str(declared.get("tokenizer_class", "")).removesuffix("Fast")
  if name not in _DIRECT_CLASSES or "auto_map" in declared:
    return None
  family = _DIRECT_CLASSES[name]
  config_type = _read_json(os.path.join(path, "config.json")).get("model_type")
  if config_type not in (None, family.model_type):  # AutoTokenizer weighs the two: let it
    return None
  return getattr(importlib.import_module(family.tokenizer_module), name)


def _auto():
  from transformers import AutoTokenizer  # pylint: disable=import-outside-toplevel

  return AutoTokenizer


@functools.lru_cache(maxsize=16)
def _load_cached(source: str, family: str):
  path = resolve_source(source)
  cls = _direct_class(path)
  auto = cls is None
  if auto:
    cls = _auto()
  try:
    # A folder's own code (`auto_map` and a .py file) is never run, nor asked about.
    tok = cls.from_pretrained(path, **({"trust_remote_code": False} if auto else {}))
  except (OSError, ValueError) as e:
    raise OSError(f"could not load a tokenizer from {source!r} (a local directory with "
                  f"tokenizer files, a hub name, or package:<name>): {e}") from e
  tok.add_special_tokens({"pad_token": PAD_TOKEN})
  if families.get(family).tokenizer_appends_eos:
    _ensure_eos_appended(tok)
  return tok


def load_hf_tokenizer(source: str, family: str):
  """Returns the transformers tokenizer for `source`, with `<PAD>` as its pad token.

  Cached per (source, family): tokenizers are immutable after this set-up, and loading GODEL's
  32k-piece vocabulary repeatedly is slow.
  """
  return _load_cached(source, family)
