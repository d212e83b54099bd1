"""Loads Hugging Face tokenizers the way the original project set them up.

Sources: `package:<name>` (files shipped in `assets/`, so tiny models work offline), a local
directory, or a hub name. Every tokenizer then gets the original's pad token through
`add_special_tokens({"pad_token": "<PAD>"})`: GODEL already holds `<PAD>` (32101) so its vocabulary
stays 32102; GPT-2 and BlenderBot gain one token, which is why the original's checkpoints have
`len(tokenizer)` rows in their embeddings.
"""

from __future__ import annotations

import functools
import os

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


@functools.lru_cache(maxsize=16)
def _load_cached(source: str, family: str):
  from transformers import AutoTokenizer

  path = resolve_source(source)
  try:
    tok = AutoTokenizer.from_pretrained(path)
  except OSError as e:
    raise OSError(f"could not load a tokenizer from {source!r} (a local directory with "
                  f"tokenizer files, a hub name, or package:<name>): {e}") from e
  tok.add_special_tokens({"pad_token": PAD_TOKEN})
  if family == "blenderbot":
    _ensure_eos_appended(tok)
  return tok


def load_hf_tokenizer(source: str, family: str):
  """Returns the transformers tokenizer for `source`, with `<PAD>` as its pad token.

  Cached per (source, family): tokenizers are immutable after this set-up, and loading GODEL's
  32k-piece vocabulary repeatedly is slow.
  """
  return _load_cached(source, family)
