"""Sequence packing for the encoder: several short contexts share one row.

A batch padded to its length bucket is mostly padding (the first 32 EmpatheticDialogues test
contexts: 2,546 real tokens in a 32 x 256 batch), and the encoder's cost grows with the padded
size. Packing places whole examples into `rows` rows of the same width (first-fit by decreasing
length), encodes those with attention confined to each example and positions counted within it,
and gathers the states back into the batch layout; encoder states equal the unpacked ones on
every real token. Padding positions come back as zeros (every consumer masks them).

`packed_rows` (host side, from a concrete mask) says how many rows a batch needs, rounded up to a
multiple of B/8 so a run compiles at most eight variants per (batch, bucket) shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def packed_rows(mask_BxC) -> int:
  """Rows that first-fit-decreasing packing needs for this mask, rounded up to a multiple of
  max(1, B // 8) (and at most B)."""
  mask = np.asarray(mask_BxC)
  b, width = mask.shape
  fill: list[int] = []
  for length in sorted((int(x) for x in mask.sum(1)), reverse=True):
    row = next((r for r, f in enumerate(fill) if f + length <= width), None)
    if row is None:
      fill.append(length)
    else:
      fill[row] += length
  step = max(1, b // 8)
  return min(b, -(-max(len(fill), 1) // step) * step)


def _plan(lengths_B, rows: int, width: int):
  """First fit by decreasing length: (row_B, start_B, overflow)."""
  order = jnp.argsort(-lengths_B, stable=True)

  def place(fill_R, b):
    length = lengths_B[b]
    fits = fill_R + length <= width
    r = jnp.argmax(fits)
    return fill_R.at[r].add(length), (r, fill_R[r], ~fits[r])

  _, (row, start, over) = jax.lax.scan(place, jnp.zeros((rows,), jnp.int32), order)
  scatter = lambda x: jnp.zeros_like(x).at[order].set(x)
  return scatter(row), scatter(start), jnp.any(over)


def encode_packed(encode, ids_BxC, mask_BxC, rows: int):
  """`encode(ids, mask, positions, segments) -> states` on `rows` packed rows, returned as BxCxD.

  Falls back to the unpacked call when the examples do not fit in `rows` rows (a `rows` not
  computed by `packed_rows` for this mask), so a wrong hint costs time, never correctness."""
  b, width = ids_BxC.shape
  mask = mask_BxC.astype(jnp.int32)
  row_B, start_B, overflow = _plan(mask.sum(1), rows, width)
  rank_BxC = jnp.cumsum(mask, axis=1) - 1
  col_BxC = jnp.where(mask == 1, start_B[:, None] + rank_BxC, width)  # width: dropped
  row_BxC = jnp.broadcast_to(row_B[:, None], (b, width))
  put = lambda values: jnp.zeros((rows, width), jnp.int32).at[row_BxC, col_BxC].set(
      values, mode="drop")
  positions = jnp.broadcast_to(jnp.arange(width, dtype=jnp.int32), (b, width))
  segments = jnp.broadcast_to(jnp.arange(1, b + 1, dtype=jnp.int32)[:, None], (b, width))
  packed_segments = put(segments)

  def packed():
    states = encode(put(ids_BxC.astype(jnp.int32)), (packed_segments > 0).astype(jnp.int32),
                    put(positions), packed_segments)
    gathered = states[row_BxC, jnp.minimum(col_BxC, width - 1)]
    return jnp.where(mask[..., None] == 1, gathered, jnp.zeros_like(gathered))

  def unpacked():
    states = encode(ids_BxC, mask_BxC, None, None)
    return jnp.where(mask[..., None] == 1, states, jnp.zeros_like(states))

  return jax.lax.cond(overflow, unpacked, packed)


def encoder_rows(model, mask_BxC) -> int | None:
  """The `encoder_rows` hint for generation: packed rows for an encoder-decoder model's batch,
  None for a decoder-only model (its prompt is decoded, not encoded)."""
  return packed_rows(mask_BxC) if model.is_encoder_decoder else None
