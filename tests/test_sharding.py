"""Parameters placed by the logical rules on a (data, fsdp, tensor) mesh of 8 CPU devices."""

import functools

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import hf_fixtures as hf
from empathy_jax import sharding
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loading import load_model


def test_mesh_config_resolution_and_errors():
  assert sharding.MeshConfig().shape(8) == (8, 1, 1)
  assert sharding.MeshConfig(data=2, fsdp=2, tensor=2).shape(8) == (2, 2, 2)
  assert sharding.MeshConfig(data=-1, tensor=4).shape(8) == (2, 1, 4)
  with pytest.raises(ValueError, match="needs 12 devices"):
    sharding.MeshConfig(data=3, fsdp=2, tensor=2).shape(8)
  with pytest.raises(ValueError, match="at most one"):
    sharding.MeshConfig(data=-1, fsdp=-1).shape(8)


@pytest.mark.parametrize("kind, scan", [("godel", False), ("dialogpt", False),
                                        ("blenderbot", False), ("godel", True)])
def test_sharded_forward_matches_single_device(kind, scan, ed_test):
  loaded = load_model("GODEL_TINY" if kind == "godel" else
                      {"dialogpt": "DialoGPT_TINY", "blenderbot": "BlenderBot_TINY"}[kind],
                      RuntimeOptions(scan_layers=scan))
  model = loaded.model
  mesh = sharding.make_mesh(sharding.MeshConfig(data=2, fsdp=2, tensor=2))
  shardings = sharding.param_shardings(model, mesh)
  params = sharding.shard_tree(loaded.params, shardings)
  batch = hf.real_batch(loaded.fmt, ed_test, n=8)

  # Placement follows the rules: embeddings (vocab, embed) -> (tensor, fsdp), MLP in -> (fsdp,
  # tensor), head axes -> tensor.
  flat = {"/".join(k.key for k in path): leaf for path, leaf in
          jax.tree_util.tree_flatten_with_path(params)[0]}
  emb = next(v for k, v in flat.items() if k in ("shared/embedding", "wte/embedding"))
  assert emb.sharding.spec == P("tensor", "fsdp")
  mlp_in = next(v for k, v in flat.items() if k.endswith(("wi/kernel", "c_fc/kernel",
                                                          "fc1/kernel")))
  expected = P(None, "fsdp", "tensor") if scan else P("fsdp", "tensor")
  assert mlp_in.sharding.spec == expected
  assert len(emb.addressable_shards) == 8 and emb.addressable_shards[0].data.shape == (
      emb.shape[0] // 2, emb.shape[1] // 2)

  arrays = [batch.context_ids_BxC, batch.context_mask_BxC, batch.target_ids_BxT,
            batch.target_mask_BxT]
  sharded_inputs = [jax.device_put(a, sharding.batch_sharding(mesh)) for a in arrays]
  fwd = jax.jit(functools.partial(model.forward), out_shardings=None)
  sharded = fwd(params, *sharded_inputs)
  single = jax.jit(model.forward)(jax.device_put(loaded.params, jax.devices()[0]),
                                  *[jax.device_put(a, jax.devices()[0]) for a in arrays])
  np.testing.assert_allclose(np.asarray(sharded.logits_BxTxV), np.asarray(single.logits_BxTxV),
                             atol=1e-4, rtol=1e-4)
