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

On a mesh that splits the batch S ways (`sharding.batch_shards`), a plan for S shards packs each
shard's B/S examples into its own R/S rows: indices are local to the shard, and every gather and
scatter runs over a leading shard axis, so a device's packed rows hold only its own examples and
packing moves no activations between devices (on a data axis; see `place`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import sharding


def _by_shard(x, shards: int):
  """Leading axis N -> (shards, N / shards): shard s's rows (a batch split over the mesh's
  batch axes gives shard s the s-th contiguous block)."""
  return x.reshape(shards, x.shape[0] // shards, *x.shape[1:])


def _merged(x):
  return x.reshape(-1, *x.shape[2:])


@dataclasses.dataclass(frozen=True)
class PackingPlan:
  """Example b of shard s = b // (B / S) sits in that shard's packed row `row_B[b]` from column
  `start_B[b]`, in its slot `slot_B[b]` (row * group + member); `members_RxG` lists each row's
  examples (-1: empty slot). Rows, slots and examples are numbered within the shard; global
  packed row = s * rows / shards + row."""

  row_B: jax.Array
  start_B: jax.Array
  slot_B: jax.Array
  members_RxG: jax.Array
  rows: int
  group: int
  shards: int = 1

  def _split(self, x):
    return _by_shard(x, self.shards)

  def _columns(self, mask_BxC):
    """Packed column of every context token (the width, i.e. dropped, on padding)."""
    mask = mask_BxC.astype(jnp.int32)
    width = mask.shape[1]
    rank = jnp.cumsum(mask, axis=1) - 1
    return jnp.where(mask == 1, jnp.asarray(self.start_B)[:, None] + rank, width)

  def _pack(self, values_BxC, cols_BxC):
    width = cols_BxC.shape[1]
    rows_per_shard = self.rows // self.shards

    def one_shard(values, cols, row):
      rows = jnp.broadcast_to(row[:, None], cols.shape)
      return jnp.zeros((rows_per_shard, width), jnp.int32).at[rows, cols].set(
          values.astype(jnp.int32), mode="drop")

    split = self._split
    return _merged(jax.vmap(one_shard)(split(values_BxC), split(cols_BxC),
                                       split(jnp.asarray(self.row_B))))

  def _segments(self, cols_BxC):
    """RxW: example number (within its shard) + 1 of every packed token, 0 on padding."""
    b, width = cols_BxC.shape
    local = jnp.arange(b) % (b // self.shards)
    return self._pack(jnp.broadcast_to(local[:, None] + 1, (b, width)), cols_BxC)

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
    take = lambda x, row, col: x[row[:, None], jnp.minimum(col, width - 1)]
    split = self._split
    x = _merged(jax.vmap(take)(split(x_RxWxD), split(jnp.asarray(self.row_B)), split(cols)))
    return jnp.where(mask_BxC[..., None] == 1, x, jnp.zeros_like(x))

  def cross_keys(self, mask_BxC) -> "PackedKeys":
    """How decoder queries of this batch read keys/values cached on the packed rows."""
    segments = self._segments(self._columns(mask_BxC))
    members = jnp.asarray(self.members_RxG)
    allowed = segments[:, None, :] == (members + 1)[:, :, None]  # RxGxW
    bias = jnp.where(allowed, 0.0, NEG_INF).astype(jnp.float32)
    return PackedKeys(bias, jnp.maximum(members, 0), jnp.asarray(self.slot_B), self.shards)


NEG_INF = -1e30  # as layers.NEG_INF: finite, so an empty slot's softmax stays finite

jax.tree_util.register_dataclass(PackingPlan,
                                 data_fields=["row_B", "start_B", "slot_B", "members_RxG"],
                                 meta_fields=["rows", "group", "shards"])


@dataclasses.dataclass(frozen=True)
class PackedKeys:
  """Cross-attention over keys/values stored on packed rows (RxHxWxK). Query row n belongs to
  example n // (N / B); a row's examples' queries attend together as one block of G slots, each
  slot seeing only its own example's keys (`bias_RxGxW`). `members_RxG`: the example in each
  slot (empty slots repeat example 0 and are never read back); `slot_B`: example b's slot.
  Examples and slots are numbered within each of `shards` shards, as in `PackingPlan`."""

  bias_RxGxW: jax.Array
  members_RxG: jax.Array
  slot_B: jax.Array
  shards: int = 1

  def _split(self, x):
    return _by_shard(x, self.shards)

  def group_queries(self, q_NxTxHxK):
    """NxTxHxK -> Rx(G*J)xHxK with J = (N / B) * T queries per example."""
    b = self.slot_B.shape[0]
    n, t = q_NxTxHxK.shape[:2]
    per_example = q_NxTxHxK.reshape(b, (n // b) * t, *q_NxTxHxK.shape[2:])
    grouped = _merged(jax.vmap(lambda q, m: q[m])(
        self._split(per_example), self._split(self.members_RxG)))  # RxGxJxHxK
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
    per_example = _merged(jax.vmap(lambda o, s: o[s])(
        self._split(per_slot), self._split(self.slot_B)))  # BxJxHxK
    return per_example.reshape(n, -1, *per_example.shape[2:])


jax.tree_util.register_dataclass(PackedKeys, data_fields=["bias_RxGxW", "members_RxG", "slot_B"],
                                 meta_fields=["shards"])


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


def _plan_rows(mask):
  """(row_B, start_B, rows used) of one shard's examples, or None when an example has holes."""
  starts = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 0))), axis=1) == 1
  if (starts.sum(1) > 1).any():
    return None
  return _first_fit_decreasing(mask.sum(1), mask.shape[1])


def plan(mask_BxC, shards: int = 1, rows_per_shard: int | None = None,
         group: int | None = None) -> PackingPlan | None:
  """The packing of a concrete (host) mask, or None when it would save nothing (as many rows
  as examples) or when some example's tokens are not contiguous (packing keeps each example's
  token distances, which relative position biases depend on, only for contiguous examples).

  `shards`: how many ways the batch is split over devices (`sharding.batch_shards(mesh)`);
  each shard's B/S examples are packed into R/S rows of their own, every shard the same count.
  Rows per shard are rounded up to a multiple of max(1, B / S // 8), the group to a power of 2;
  `rows_per_shard` / `group` fix them instead (None when the batch needs more), so that every
  batch of a run gives the same shapes: one program."""
  mask = np.asarray(mask_BxC)
  b, _ = mask.shape
  if b % shards:
    raise ValueError(f"a batch of {b} rows cannot be split into {shards} shards")
  per_shard = b // shards
  step = max(1, per_shard // 8)
  placed = [_plan_rows(m) for m in _by_shard(mask, shards)]
  if any(p is None for p in placed):
    return None
  used = max(p[2] for p in placed)
  rows = -(-used // step) * step if rows_per_shard is None else rows_per_shard
  if rows >= per_shard or used > rows:
    return None
  row = np.concatenate([p[0] for p in placed])
  start = np.concatenate([p[1] for p in placed])
  counts = max(np.bincount(p[0], minlength=rows).max() for p in placed)
  if group is None:
    group = 1 << int(counts - 1).bit_length()
  elif counts > group:
    return None
  members = np.full((shards, rows, group), -1, np.int32)
  slot = np.zeros(b, np.int32)
  for b_, r in enumerate(row):
    s, local = divmod(b_, per_shard)
    g = int((members[s, r] >= 0).sum())
    members[s, r, g] = local
    slot[b_] = r * group + g
  return PackingPlan(row, start, slot, members.reshape(shards * rows, group), shards * rows,
                     group, shards)


def place(p: PackingPlan | None, mesh):
  """A host plan as jit arguments on `mesh`: a per-shard plan's arrays split over the batch axes
  like the batch (each device gets its own shard's plan), a one-shard plan replicated. Every
  process plans the whole global batch, so the static row and group counts agree everywhere,
  and places only its own devices' parts. On a data axis the packed program then moves nothing
  between devices; with an fsdp axis in the batch split, XLA still re-lays out the packed
  embedding lookup (a few all-gathers; measured, not solved)."""
  if p is None:
    return None
  if p.shards == 1:
    return sharding.replicate(p, mesh)
  if p.shards != sharding.batch_shards(mesh):
    raise ValueError(f"a plan for {p.shards} shards on a mesh that splits the batch "
                     f"{sharding.batch_shards(mesh)} ways")
  return jax.tree.map(lambda x: sharding.from_host(x, sharding.batch_sharding(mesh, x.ndim)), p)


def encoder_plan(model, mask_BxC, shards: int = 1, **sizes) -> PackingPlan | None:
  """The packing generation uses for a batch: a plan for encoder-decoder models, None for
  decoder-only ones (their prompt is decoded, not encoded). `shards`, `sizes`
  (rows_per_shard, group): as in `plan`."""
  return plan(mask_BxC, shards, **sizes) if model.is_encoder_decoder else None
