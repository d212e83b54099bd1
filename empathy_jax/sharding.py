"""One mesh and one rule table for every step: SFT, reward, PPO, generation, evaluation.

Parameters carry logical axis names (vocab, embed, mlp, heads, kv, qkv, layers, norm, position,
buckets); `LOGICAL_RULES` maps them onto the mesh axes (data, fsdp, tensor). Batches are split
over (data, fsdp). A dimension that a mesh axis does not divide is replicated on that axis
instead of failing (e.g. a 32,102-token vocabulary on 4 tensor shards).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")
LOGICAL_RULES = (
    ("batch", BATCH_AXES),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("qkv", None),
    ("layers", None),
    ("norm", None),
    ("position", None),
    ("buckets", None),
)


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """Mesh axis sizes; -1 on one axis takes the remaining devices (default: all on data)."""

  data: int = -1
  fsdp: int = 1
  tensor: int = 1

  def shape(self, num_devices: int) -> tuple[int, int, int]:
    sizes = [self.data, self.fsdp, self.tensor]
    if sizes.count(-1) > 1:
      raise ValueError(f"at most one mesh axis may be -1, got {sizes}")
    if any(s == 0 or s < -1 for s in sizes):
      raise ValueError(f"mesh axis sizes must be positive or -1, got {sizes}")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
      if num_devices % known:
        raise ValueError(f"{num_devices} devices cannot be split into mesh {sizes}")
      sizes[sizes.index(-1)] = num_devices // known
    if int(np.prod(sizes)) != num_devices:
      raise ValueError(f"mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs "
                       f"{int(np.prod(sizes))} devices, but {num_devices} are available")
    return tuple(sizes)


def make_mesh(config: MeshConfig = MeshConfig(), devices: Sequence | None = None) -> Mesh:
  devices = list(devices) if devices is not None else jax.devices()
  shape = config.shape(len(devices))
  # Auto axes: XLA's sharding propagation places activations; parameters and batches carry
  # explicit NamedShardings.
  auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  if devices == jax.devices():
    return jax.make_mesh(shape, MESH_AXES, devices=devices, axis_types=auto)
  return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=auto)


def _fit(spec: P, shape: tuple[int, ...], mesh: Mesh) -> P:
  """Drops mesh axes that do not divide their dimension."""
  fitted = []
  for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    if axes is None:
      fitted.append(None)
      continue
    names = (axes,) if isinstance(axes, str) else tuple(axes)
    size = int(np.prod([mesh.shape[a] for a in names]))
    if dim % size:
      logging.info("dimension %d not divisible by mesh axes %s: replicated", dim, names)
      fitted.append(None)
    else:
      fitted.append(axes)
  return P(*fitted)


def logical_to_sharding(abstract_boxed, mesh: Mesh, rules=LOGICAL_RULES):
  """NamedShardings for a tree whose leaves are `nn.LogicallyPartitioned` (or plain arrays,
  which are replicated)."""
  specs = nn.get_partition_spec(abstract_boxed)
  shapes = nn.unbox(abstract_boxed)
  mesh_specs = nn.logical_to_mesh(specs, rules)

  def to_sharding(spec, leaf):
    spec = spec if isinstance(spec, P) else P()
    return NamedSharding(mesh, _fit(spec, tuple(leaf.shape), mesh))

  return jax.tree.map(to_sharding, mesh_specs, shapes,
                      is_leaf=lambda x: isinstance(x, P) or x is None)


def param_shardings(model, mesh: Mesh, rules=LOGICAL_RULES):
  """Shardings of a `DialogueModel`'s parameters."""
  return logical_to_sharding(model.abstract_params(), mesh, rules)


def batch_shards(mesh: Mesh) -> int:
  """How many ways a batch is split (the data x fsdp axes): batch rows must divide by it."""
  return int(np.prod([mesh.shape[a] for a in BATCH_AXES]))


def batch_sharding(mesh: Mesh, ndim: int = 2, rows_axis: int = 0) -> NamedSharding:
  """Rows (axis `rows_axis`, e.g. 1 for a layer-stacked cache) split over the batch axes."""
  spec = [None] * ndim
  spec[rows_axis] = BATCH_AXES
  return NamedSharding(mesh, P(*spec))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def shard_tree(tree, shardings):
  """Places a tree by `shardings`; host values (the same on every process) are placed shard by
  shard, so this works across hosts too."""
  def put(x, s):
    if isinstance(x, jax.Array):
      return jax.device_put(x, s)
    return from_host(x, s)
  return jax.tree.map(put, tree, shardings)


def global_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """A host-side global batch (the same on every process) as arrays split over the batch axes;
  each process places the rows of its own devices, whichever they are in the mesh."""
  return {k: from_host(v, batch_sharding(mesh, v.ndim)) for k, v in batch.items()}


def from_host(tree, shardings):
  """Global arrays from host values that every process holds whole (the same on each):
  each process places only its addressable shards. `shardings`: one sharding, or a tree."""
  if isinstance(shardings, jax.sharding.Sharding):
    shardings = jax.tree.map(lambda _: shardings, tree)

  def put(x, s):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, s, lambda index: x[index])

  return jax.tree.map(put, tree, shardings)


def replicate(tree, mesh: Mesh):
  """Host values (the same on every process) as arrays replicated over the mesh."""
  return from_host(tree, replicated(mesh))


def to_host(tree):
  """Host numpy copies of (possibly multi-host) global arrays, on every process."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      if x.sharding.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
      from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree.map(get, tree)


def barrier(name: str) -> None:
  """Every process waits here for the others (nothing to wait for on one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    multihost_utils.sync_global_devices(name)


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """`jax.distributed.initialize`; arguments are auto-detected on TPU pods, SLURM and Open MPI
  when None (CPU processes exchange collectives through gloo, JAX's default)."""
  jax.distributed.initialize(coordinator_address, num_processes, process_id)
