"""Train state and its sharded creation (abstract state -> shardings -> jit with out_shardings),
the same for every trainer; the abstract state is also orbax's restore target."""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from empathy_jax import sharding


@flax.struct.dataclass
class TrainState:
  """step: optimizer steps taken. params: model parameters (plus any heads).
  opt_state: optax state. rng: base key; step keys are `fold_in(rng, step)` so resume is exact."""

  step: jax.Array
  params: Any
  opt_state: Any
  rng: jax.Array


def abstract_state(boxed_params, tx):
  """TrainState of ShapeDtypeStructs whose param/opt leaves keep their logical-axis boxes."""
  def create():
    params = jax.tree.map(lambda x: x, boxed_params)
    return TrainState(step=jnp.int32(0), params=params, opt_state=tx.init(params),
                      rng=jax.random.PRNGKey(0))
  return jax.eval_shape(create)


def state_shardings(boxed_abstract_state, mesh):
  return sharding.logical_to_sharding(boxed_abstract_state, mesh)


def create_state(params, tx, rng, shardings: TrainState) -> TrainState:
  """Places `params` by the rules and initialises the optimizer state sharded alike."""
  params = sharding.shard_tree(params, shardings.params)
  opt_state = jax.jit(tx.init, out_shardings=shardings.opt_state)(params)
  return TrainState(step=jax.device_put(jnp.int32(0), shardings.step), params=params,
                    opt_state=opt_state, rng=jax.device_put(rng, shardings.rng))


def unboxed(tree):
  return nn.unbox(tree)


def jit_update(update, shardings, mesh, *, in_shardings=None):
  """`update(state, ...) -> (state, metrics)` jitted as every trainer runs its updates: the
  state donated and kept in its shardings, the metrics replicated (every process reads them).
  `in_shardings`: the other arguments' shardings (None: taken from the arguments)."""
  return jax.jit(update, in_shardings=None if in_shardings is None else (shardings,
                                                                           *in_shardings),
                 out_shardings=(shardings, sharding.replicated(mesh)), donate_argnums=0)
