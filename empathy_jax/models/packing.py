"""Sequence packing for encoder-decoder contexts: several short contexts share one row.

A batch padded to its length bucket is mostly padding (the first 32 EmpatheticDialogues test
contexts: 2,546 real tokens in a 32 x 256 batch), and both the encoder and the decoder's
cross-attention cost grow with the padded size. A `PackingPlan` places whole examples into R rows
of the same width (first fit by decreasing length, planned on the host from the concrete mask):
- the encoder runs on the packed rows, attention confined to each example, each token keeping
  its original position (for learned positions; relative ones see the same distances, examples
  being contiguous), so its states equal the unpacked ones on every real token;
- the decoder's cross-attention keys/values are projected and cached on the packed rows, and
  each decoding step groups the queries by the packed row of their example (`PackedKeys`): a
  step reads R rows of keys/values instead of B.

Rows are rounded up to a multiple of B/8 and the number of examples per row (the group) to a
power of two, so a run compiles a few variants per (batch, bucket) shape; the plan's arrays are
ordinary jit arguments.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class PackingPlan:
  """Example b sits in packed row `row_B[b]` from column `start_B[b]`, as member
  `slot_B[b] % group` of that row; `members_RxG` lists each row's examples (-1: empty slot)."""

  row_B: jax.Array
  start_B: jax.Array
  slot_B: jax.Array
  members_RxG: jax.Array
  rows: int
  group: int

  def _columns(self, mask_BxC):
    """Packed column of every context token (the width, i.e. dropped, on padding)."""
    mask = mask_BxC.astype(jnp.int32)
    width = mask.shape[1]
    rank = jnp.cumsum(mask, axis=1) - 1
    return jnp.where(mask == 1, jnp.asarray(self.start_B)[:, None] + rank, width)

  def _pack(self, values_BxC, cols_BxC):
    b, width = cols_BxC.shape
    rows = jnp.broadcast_to(jnp.asarray(self.row_B)[:, None], (b, width))
    return jnp.zeros((self.rows, width), jnp.int32).at[rows, cols_BxC].set(
        values_BxC.astype(jnp.int32), mode="drop")

  def _segments(self, cols_BxC):
    """RxW: example number + 1 of every packed token, 0 on padding."""
    b, width = cols_BxC.shape
    return self._pack(jnp.broadcast_to(jnp.arange(1, b + 1)[:, None], (b, width)), cols_BxC)

  def encoder_inputs(self, ids_BxC, mask_BxC):
    """(ids, mask, positions, segments), each RxW: what a packing-aware encoder reads.
    Positions are the tokens' original columns; segments number examples from 1."""
    cols = self._columns(mask_BxC)
    b, width = cols.shape
    positions = jnp.broadcast_to(jnp.arange(width), (b, width))
    segments = self._segments(cols)
    return (self._pack(ids_BxC, cols), (segments > 0).astype(jnp.int32),
            self._pack(positions, cols), segments)

  def unpack(self, x_RxWxD, mask_BxC):
    """BxCxD per-token values gathered back to the batch layout, zeros on padding."""
    cols = self._columns(mask_BxC)
    width = cols.shape[1]
    x = x_RxWxD[jnp.asarray(self.row_B)[:, None], jnp.minimum(cols, width - 1)]
    return jnp.where(mask_BxC[..., None] == 1, x, jnp.zeros_like(x))

  def cross_keys(self, mask_BxC) -> "PackedKeys":
    """How decoder queries of this batch read keys/values cached on the packed rows."""
    segments = self._segments(self._columns(mask_BxC))
    members = jnp.asarray(self.members_RxG)
    allowed = segments[:, None, :] == (members + 1)[:, :, None]  # RxGxW
    bias = jnp.where(allowed, 0.0, NEG_INF).astype(jnp.float32)
    return PackedKeys(bias, jnp.maximum(members, 0), jnp.asarray(self.slot_B))


NEG_INF = -1e30  # as layers.NEG_INF: finite, so an empty slot's softmax stays finite

jax.tree_util.register_dataclass(PackingPlan,
                                 data_fields=["row_B", "start_B", "slot_B", "members_RxG"],
                                 meta_fields=["rows", "group"])


@dataclasses.dataclass(frozen=True)
class PackedKeys:
  """Cross-attention over keys/values stored on packed rows (RxHxWxK). Query row n belongs to
  example n // (N / B); a row's examples' queries attend together as one block of G slots, each
  slot seeing only its own example's keys (`bias_RxGxW`). `members_RxG`: the example in each
  slot (empty slots repeat example 0 and are never read back); `slot_B`: example b's slot."""

  bias_RxGxW: jax.Array
  members_RxG: jax.Array
  slot_B: jax.Array

  def group_queries(self, q_NxTxHxK):
    """NxTxHxK -> Rx(G*J)xHxK with J = (N / B) * T queries per example."""
    b = self.slot_B.shape[0]
    n, t = q_NxTxHxK.shape[:2]
    per_example = q_NxTxHxK.reshape(b, (n // b) * t, *q_NxTxHxK.shape[2:])
    grouped = per_example[self.members_RxG]  # RxGxJxHxK
    r, g, j = grouped.shape[:3]
    return grouped.reshape(r, g * j, *grouped.shape[3:])

  def bias(self, queries_per_example: int):
    """Rx1x(G*J)xW additive bias for the grouped queries."""
    r, g, w = self.bias_RxGxW.shape
    bias = jnp.broadcast_to(self.bias_RxGxW[:, :, None, :], (r, g, queries_per_example, w))
    return bias.reshape(r, 1, g * queries_per_example, w)

  def ungroup(self, out_RxQxHxK, n: int):
    """Rx(G*J)xHxK -> NxTxHxK, each example's outputs taken from its slot."""
    r, q = out_RxQxHxK.shape[:2]
    g = self.members_RxG.shape[1]
    per_slot = out_RxQxHxK.reshape(r * g, q // g, *out_RxQxHxK.shape[2:])
    per_example = per_slot[self.slot_B]  # BxJxHxK
    return per_example.reshape(n, -1, *per_example.shape[2:])


jax.tree_util.register_dataclass(PackedKeys, data_fields=["bias_RxGxW", "members_RxG", "slot_B"],
                                 meta_fields=[])


def _first_fit_decreasing(lengths_B, width: int):
  """(row_B, start_B, number of rows): whole examples into rows of `width` tokens."""
  row = np.zeros(len(lengths_B), np.int32)
  start = np.zeros(len(lengths_B), np.int32)
  fill: list[int] = []
  for b in np.argsort(-lengths_B, kind="stable"):
    length = int(lengths_B[b])
    r = next((r for r, f in enumerate(fill) if f + length <= width), None)
    if r is None:
      r = len(fill)
      fill.append(0)
    row[b], start[b] = r, fill[r]
    fill[r] += length
  return row, start, max(len(fill), 1)


def plan(mask_BxC) -> PackingPlan | None:
  """The packing of a concrete (host) mask, or None when it would save nothing (as many rows
  as examples) or when some example's tokens are not contiguous (packing keeps each example's
  token distances, which relative position biases depend on, only for contiguous examples).
  Rows are rounded up to a multiple of max(1, B // 8), the group to a power of 2."""
  mask = np.asarray(mask_BxC)
  b, width = mask.shape
  starts = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 0))), axis=1) == 1
  if (starts.sum(1) > 1).any():
    return None
  row, start, used = _first_fit_decreasing(mask.sum(1), width)
  step = max(1, b // 8)
  rows = -(-used // step) * step
  if rows >= b:
    return None
  counts = np.bincount(row, minlength=rows)
  group = 1 << int(counts.max() - 1).bit_length()
  members = np.full((rows, group), -1, np.int32)
  slot = np.zeros(b, np.int32)
  for b_, r in enumerate(row):
    g = int((members[r] >= 0).sum())
    members[r, g] = b_
    slot[b_] = r * group + g
  return PackingPlan(row, start, slot, members, rows, group)


def encoder_plan(model, mask_BxC) -> PackingPlan | None:
  """The packing generation uses for a batch: a plan for encoder-decoder models, None for
  decoder-only ones (their prompt is decoded, not encoded)."""
  return plan(mask_BxC) if model.is_encoder_decoder else None
