"""The tf.data input path for TPU hosts: GODEL-format (T5) examples tokenized in the graph by
SentencePiece (`tensorflow-text`, the `[tf]` extra), sharded per host, deterministic, resumable.

It gives the ids of the default path (`tokenization.families.GodelFormat` on transformers'
tokenizer) token for token, which a test checks on the whole EmpatheticDialogues test and
validation splits (`python -m empathy_jax.data.tfdata --check DATASET_DIR`):
- the context string is the original's `Instruction: {instruction} {[KNOWLEDGE] knowledge}
  [CONTEXT] {turns joined by ' EOS '}`; GODEL's added tokens (`EOS`, `<PAD>`) split the text
  wherever they occur, as transformers splits on added tokens, and every other piece goes
  through SentencePiece; `</s>` ends each sequence;
- too long a context keeps `Instruction: ... [CONTEXT] ` (with its `</s>`) and the dialogue's
  last tokens, as `GodelFormat` does; targets are `<PAD> {text}` cut at `max_length`.

`examples(split, ...)` is the tf.data pipeline (`shard(num_shards, index)` per host, `skip`
to resume from a position, order fixed); `encode_split` gives what `GodelFormat` gives, so
`data.pipeline.tokenize_split` builds the same table from it and SFT's batching, bucketing and resumable data position are the
same on both paths (`--input_pipeline tfdata`).
"""

from __future__ import annotations

import os
import re
from typing import Iterator

import numpy as np

from empathy_jax.data.dialogue_dataset import DialogueSplit, load_dialogue_split, split_dir
from empathy_jax.models.loaded import format_for
from empathy_jax.tokenization.families import GODEL_DEFAULT_INSTRUCTION, Encoded, GodelFormat

INSTALL_HINT = ("--input_pipeline tfdata needs tensorflow-text: pip install 'empathy-jax[tf]' "
                "(or pip install -e '.[tf]' in a checkout)")
_PACKAGE_SPM = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tokenization", "assets",
                            "godel", "spiece.model")


class InputPipelineError(ValueError):
  """The tf.data path cannot serve this run (another model family)."""


def require_tf():
  """(tensorflow, tensorflow_text), or an ImportError that says how to install them."""
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tensorflow_text as tf_text  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise ImportError(f"{INSTALL_HINT} ({e})") from e
  tf.config.set_visible_devices([], "GPU")  # input work stays on the host; JAX owns devices
  return tf, tf_text


def check_format(fmt) -> None:
  """The tf.data path serves GODEL's format only."""
  if not isinstance(fmt, GodelFormat):
    raise InputPipelineError(f"--input_pipeline tfdata supports the godel (T5) family; this "
                             f"model's format is {fmt.family}: use --input_pipeline python")


def spm_model_for(fmt) -> bytes:
  """The SentencePiece model of a GODEL-format tokenizer: `spiece.model` beside its files, else
  the package's (GODEL's: a tokenizer folder without its `spiece.model` is taken to have
  GODEL's vocabulary, as every GODEL checkpoint has)."""
  check_format(fmt)
  folder = getattr(fmt.tokenizer, "name_or_path", "") or ""
  path = os.path.join(folder, "spiece.model")
  if not os.path.isfile(path):
    path = _PACKAGE_SPM
  with open(path, "rb") as f:
    return f.read()


class GodelGraphTokenizer:
  """GodelFormat's encoding as TensorFlow ops on string tensors."""

  def __init__(self, spm_model: bytes, fmt: GodelFormat):
    tf, tf_text = require_tf()
    self.tf, self.tf_text = tf, tf_text
    # The fast implementation: the classic op breaks ties between equal-score segmentations
    # the other way from sentencepiece and transformers ("awwww": a+www+w, not a+w+www).
    self.spm = tf_text.FastSentencepieceTokenizer(spm_model)
    vocab = fmt.tokenizer.get_vocab()
    self.added = {token: vocab[token] for token in ("EOS", "<PAD>") if token in vocab}
    self.eos, self.pad_token = fmt.eos_id, fmt.tokenizer.pad_token
    self.max_length = fmt.max_length
    self._split = "|".join(re.escape(t) for t in self.added) or None
    root, power = _repetition_table(vocab, len(vocab) + 1)
    self._root, self._power = tf.constant(root), tf.constant(power)

  def encode(self, texts):
    """[N] strings -> ragged [N, None] int32 ids ending in `</s>`."""
    tf = self.tf
    if self._split is None:
      ids = self.spm.tokenize(texts).with_row_splits_dtype(tf.int64)
    else:
      pieces = self.tf_text.regex_split(texts, self._split, self._split)  # delimiters kept
      flat = pieces.flat_values
      special = tf.fill(tf.shape(flat), -1)
      for token, token_id in self.added.items():
        special = tf.where(flat == token, token_id, special)
      is_special = special >= 0
      tokens = self.spm.tokenize(flat).with_row_splits_dtype(tf.int64)  # [K, None]
      normal = _rows_where(tf, tokens, tf.logical_not(is_special))
      specials = tf.RaggedTensor.from_row_lengths(tf.boolean_mask(special, is_special),
                                                  tf.cast(is_special, tf.int64))
      per_piece = tf.concat([normal, specials], axis=1)  # a piece is one or the other
      ids = pieces.with_flat_values(per_piece).merge_dims(1, 2)
    ids = ids.with_flat_values(self._transformers_tie_order(ids.flat_values))
    eos = tf.fill([ids.nrows(), 1], tf.constant(self.eos, tf.int32))
    return tf.concat([ids, eos], axis=1)

  def _transformers_tie_order(self, ids):
    """Equal-score segmentations are permutations of powers of one string ("mmm" = m+mm =
    mm+m): transformers' Viterbi keeps, at every end position, the longest last piece, i.e.
    such a run of pieces in increasing length; SentencePiece's order may differ. Sorts each
    run of consecutive pieces with the same root by their power (stable)."""
    tf = self.tf
    root = tf.gather(self._root, ids)
    power = tf.gather(self._power, ids)
    previous = tf.concat([[-1], root[:-1]], axis=0)
    starts = tf.logical_or(root < 0, root != previous)
    run = tf.cumsum(tf.cast(starts, tf.int64))
    key = run * 1024 + tf.cast(tf.where(root < 0, 0, power), tf.int64)
    return tf.gather(ids, tf.argsort(key, stable=True))

  def contexts(self, turns, instructions, knowledge):
    """(ragged ids, truncated [N] bool): `turns` ragged [N, None] strings; `instructions` [N]
    (empty: the default); `knowledge` [N] (empty: none)."""
    tf = self.tf
    instructions = tf.where(instructions == "", GODEL_DEFAULT_INSTRUCTION, instructions)
    know = tf.where(knowledge == "", "", tf.strings.join(["[KNOWLEDGE] ", knowledge]))
    dialog = tf.strings.reduce_join(turns, axis=1, separator=" EOS ")
    text = tf.strings.strip(tf.strings.join(
        ["Instruction: ", instructions, " ", know, " [CONTEXT] ", dialog]))
    full = self.encode(text)
    long = full.row_lengths() > self.max_length
    prefix = self.encode(tf.strings.join(["Instruction: ", instructions, " [CONTEXT] "]))
    tail = self.encode(dialog)
    room = self.max_length - prefix.row_lengths()
    start = tf.maximum(tail.row_lengths() - room, 0)
    cut = tf.concat([prefix, _drop_first(tf, tail, start)], axis=1)
    return tf.concat([_rows_where(tf, full, ~long), _rows_where(tf, cut, long)], axis=1), long

  def targets(self, texts):
    """(ragged ids `<PAD> text </s>` cut at max_length, truncated [N] bool)."""
    tf = self.tf
    ids = self.encode(tf.strings.join([self.pad_token, " ", texts]))
    return ids[:, :self.max_length], ids.row_lengths() > self.max_length


def _repetition_table(vocab: dict[str, int], size: int) -> tuple[np.ndarray, np.ndarray]:
  """Per id: the id-independent number of its piece's primitive root (a piece that is u^k, no
  word boundary) or -1, and k."""
  root = np.full(size, -1, np.int32)
  power = np.ones(size, np.int32)
  roots: dict[str, int] = {}
  for piece, i in vocab.items():
    if not piece or "\u2581" in piece or i >= size:
      continue
    n = len(piece)
    period = next(p for p in range(1, n + 1) if n % p == 0 and piece[:p] * (n // p) == piece)
    root[i] = roots.setdefault(piece[:period], len(roots))
    power[i] = n // period
  return root, power


def _kept(tf, ragged, keep_values):
  """`ragged` with only the values where `keep_values` (one per value) is True; rows stay."""
  return tf.RaggedTensor.from_value_rowids(tf.boolean_mask(ragged.flat_values, keep_values),
                                           tf.boolean_mask(ragged.value_rowids(), keep_values),
                                           nrows=ragged.nrows())


def _rows_where(tf, ragged, keep_rows):
  """`ragged` with the rows where `keep_rows` is False emptied."""
  return _kept(tf, ragged, tf.gather(keep_rows, ragged.value_rowids()))


def _drop_first(tf, ragged, counts):
  """Each row without its first `counts[row]` values."""
  position = tf.range(tf.shape(ragged.flat_values, out_type=tf.int64)[0]) - tf.gather(
      ragged.row_starts(), ragged.value_rowids())
  return _kept(tf, ragged, position >= tf.gather(tf.cast(counts, tf.int64),
                                                 ragged.value_rowids()))


def examples(split: DialogueSplit, fmt, num_shards: int = 1, shard_index: int = 0,
             start: int = 0, batch_size: int = 512):
  """A tf.data.Dataset of this host's tokenized examples in a fixed order: rows
  `shard_index::num_shards` of the split (each host its own), from its `start`-th (a resumed
  run's position), as dicts of `index`, `context_ids`, `target_ids`, `context_truncated`,
  `target_truncated`. Tokenization runs in the graph, `batch_size` rows at a time."""
  tf, _ = require_tf()
  graph = GodelGraphTokenizer(spm_model_for(fmt), fmt)
  n = len(split)
  rows = tf.data.Dataset.from_tensor_slices({
      "index": np.arange(n, dtype=np.int64),
      "turns": tf.ragged.constant([list(c) for c in split.contexts], dtype=tf.string),
      "instruction": [i or "" for i in split.instructions],
      "knowledge": [k or "" for k in split.knowledge],
      "target": list(split.targets)})
  rows = rows.shard(num_shards, shard_index).skip(start)

  def tokenize(batch):
    context, context_cut = graph.contexts(batch["turns"], batch["instruction"],
                                          batch["knowledge"])
    target, target_cut = graph.targets(batch["target"])
    return {"index": batch["index"], "context_ids": context, "target_ids": target,
            "context_truncated": context_cut, "target_truncated": target_cut}

  options = tf.data.Options()
  options.deterministic = True
  return (rows.batch(batch_size).map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
          .unbatch().with_options(options))


def iterate(split: DialogueSplit, fmt, **kwargs) -> Iterator[dict]:
  """`examples` as numpy dicts."""
  for row in examples(split, fmt, **kwargs).as_numpy_iterator():
    yield row


def encode_split(split: DialogueSplit, fmt) -> tuple[list[Encoded], list[Encoded]]:
  """(contexts, targets) of the whole split through the tf.data path, as
  `GodelFormat.encode_contexts` / `encode_targets` return them."""
  rows = list(iterate(split, fmt))
  encoded = lambda name: [Encoded(r[f"{name}_ids"].tolist(), bool(r[f"{name}_truncated"]))
                          for r in rows]
  return encoded("context"), encoded("target")


def compare(split: DialogueSplit, fmt, rows: list[dict] | None = None) -> list[str]:
  """Where the tf.data path's ids (`rows`, or a pass over `split`) differ from the default
  tokenizer's (empty: identical)."""
  contexts = fmt.encode_contexts(split.contexts, split.instructions, split.knowledge)
  targets = fmt.encode_targets(split.targets)
  problems = []
  for row in rows if rows is not None else iterate(split, fmt):
    i = int(row["index"])
    for name, want, got in (("context", contexts[i], row["context_ids"]),
                            ("target", targets[i], row["target_ids"])):
      if list(want.ids) != got.tolist() or want.truncated != bool(row[f"{name}_truncated"]):
        problems.append(f"row {i} {name}: default {want.ids} vs tfdata {got.tolist()}")
  return problems


def main(argv=None) -> int:
  """python -m empathy_jax.data.tfdata --check DATASET_DIR [--splits test,val]: the tf.data
  ids against the default tokenizer on whole splits."""
  import argparse  # pylint: disable=import-outside-toplevel


  parser = argparse.ArgumentParser(description=main.__doc__)
  parser.add_argument("--check", required=True, metavar="DATASET_DIR")
  parser.add_argument("--splits", default="test,val")
  parser.add_argument("--data_erasure_level", type=float, default=0.0)
  args = parser.parse_args(argv)
  fmt = format_for("godel", "package:godel", 512)
  failed = 0
  for name in args.splits.split(","):
    split = load_dialogue_split(split_dir(args.check, name), args.data_erasure_level)
    problems = compare(split, fmt)
    print(f"{name}: {len(split)} examples, {len(problems)} differ")
    for p in problems[:5]:
      print("  " + p)
    failed += len(problems)
  return 1 if failed else 0


if __name__ == "__main__":
  raise SystemExit(main())
