"""Tokenizers (`loading`) and the original's per-family input formats (`families`)."""
