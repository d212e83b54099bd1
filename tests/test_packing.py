"""Encoder-decoder context packing: the host plan, encoder states and cross-attention equal to
the unpacked ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from empathy_jax.models import layers as L
from empathy_jax.models.loading import load_model
from empathy_jax.models.packing import plan


def _mask(lengths, width, left_padded=()):
  mask = np.zeros((len(lengths), width), np.int32)
  for i, n in enumerate(lengths):
    if i in left_padded:
      mask[i, width - n:] = 1
    else:
      mask[i, :n] = 1
  return mask


def test_plan_is_first_fit_decreasing_rounded_to_an_eighth_of_the_batch():
  # 5, 4, 3, 2, 2 into width 8: [5+3], [4+2+2] -> 2 rows of at most 3 examples (group 4).
  p = plan(_mask([2, 5, 3, 4, 2], 8))
  assert (p.rows, p.group) == (2, 4)
  np.testing.assert_array_equal(p.row_B, [1, 0, 0, 1, 1])
  np.testing.assert_array_equal(p.start_B, [4, 0, 5, 0, 6])  # equal lengths: batch order
  # Every example sits in its own slot of its row, and the slots say who is where.
  for b in range(5):
    assert p.members_RxG.reshape(-1)[p.slot_B[b]] == b
    assert p.slot_B[b] // p.group == p.row_B[b]
  assert (p.members_RxG >= 0).sum() == 5
  # Batch 16: rows rounded up to a multiple of 2.
  assert plan(_mask([8] * 3 + [1] * 13, 8)).rows == 6  # 3 full + 13 ones in 2 rows = 5 -> 6
  assert plan(_mask([8] * 8 + [0] * 8, 8)).rows == 8
  # Nothing to gain: no plan.
  assert plan(_mask([8] * 16, 8)) is None


def test_no_plan_when_an_example_has_holes():
  mask = _mask([3, 2, 2, 1], 8)
  assert plan(mask) is not None
  mask[0, 5] = 1  # tokens 0-2 and 5: distances would change when packed
  assert plan(mask) is None


@pytest.mark.parametrize("name", ["GODEL_TINY", "BlenderBot_TINY"])
def test_packed_encoder_states_equal_unpacked(name):
  loaded = load_model(name)
  width = 32
  lengths = [30, 3, 17, 9, 1, 12, 25, 5]
  mask = _mask(lengths, width, left_padded=(3,))
  rng = np.random.default_rng(0)
  ids = np.where(mask == 1, rng.integers(5, 1000, mask.shape), 0).astype(np.int32)
  p = plan(mask)
  assert p is not None and p.rows < len(lengths)
  full = np.asarray(loaded.model.encode(loaded.params, jnp.asarray(ids), jnp.asarray(mask)))
  encode = jax.jit(lambda prm, i, m, pl: loaded.model.encode(prm, i, m, pl))
  got = np.asarray(encode(loaded.params, jnp.asarray(ids), jnp.asarray(mask), p))
  real = mask[..., None] == 1
  np.testing.assert_allclose(np.where(real, got, 0), np.where(real, full, 0), atol=2e-5)
  assert (got[~real[..., 0]] == 0).all()


@pytest.mark.parametrize("beams", [1, 3])
def test_cross_attention_on_packed_rows_equals_unpacked(beams):
  """Queries grouped by packed row see exactly their own example's keys/values."""
  width, heads, dim = 16, 2, 8
  lengths = [9, 2, 5, 16, 3, 7]
  mask = _mask(lengths, width, left_padded=(2,))
  b = len(lengths)
  p = plan(mask)
  assert p is not None and p.group > 1
  rng = np.random.default_rng(1)
  keys = jnp.asarray(rng.normal(size=(b, width, heads, dim)), jnp.float32)
  values = jnp.asarray(rng.normal(size=(b, width, heads, dim)), jnp.float32)
  queries = jnp.asarray(rng.normal(size=(b * beams, 1, heads, dim)), jnp.float32)
  # Unpacked reference: every example's own keys, padding masked.
  want = L.attention(queries, L.heads_first(keys), L.heads_first(values),
                     L.cross_attention_bias(jnp.asarray(mask)), 0.3, None)
  # Packed: keys/values placed as the plan packs encoder tokens.
  rows_ids, _, _, _ = p.encoder_inputs(jnp.asarray(np.arange(b * width).reshape(b, width)),
                                       jnp.asarray(mask))
  flat = lambda x: x.reshape(b * width, heads, dim)
  packed_k = L.heads_first(flat(keys)[rows_ids])
  packed_v = L.heads_first(flat(values)[rows_ids])
  got = L.attention(queries, packed_k, packed_v, p.cross_keys(jnp.asarray(mask)), 0.3, None)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_a_plan_per_shard_packs_each_shards_examples_into_its_own_rows():
  # Two shards of 4: [6, 2, 5, 1] -> rows [6+2], [5+1]; [7, 7, 1, 1] -> [7+1], [7+1].
  p = plan(_mask([6, 2, 5, 1, 7, 7, 1, 1], 8), shards=2)
  assert (p.rows, p.group, p.shards) == (4, 2, 2)  # 2 rows per shard
  np.testing.assert_array_equal(p.row_B, [0, 0, 1, 1, 0, 1, 0, 1])  # rows within the shard
  members = p.members_RxG.reshape(2, 2, 2)  # shard x row x slot, examples within the shard
  np.testing.assert_array_equal(members, [[[0, 1], [2, 3]], [[0, 2], [1, 3]]])
  for b in range(8):
    assert members[b // 4].reshape(-1)[p.slot_B[b]] == b % 4
  # The shards share one row count: the fullest shard decides.
  assert plan(_mask([8, 8, 1, 1, 2, 2, 2, 2], 8), shards=2).rows == 2 * 3  # 3 rows and 1
  with pytest.raises(ValueError, match="7 rows cannot be split into 2 shards"):
    plan(_mask([1] * 7, 8), shards=2)


def test_per_shard_packed_generation_on_8_devices_equals_unpacked_and_gathers_nothing(tmp_path):
  """The packed generation step on a data-sharded mesh moves no activations between devices
  when each shard packs its own examples; a plan over the whole batch all-gathers."""
  import hf_fixtures as hf
  import sharded_generation as sg
  from empathy_jax import sharding

  hf.save_torch_model("godel", str(tmp_path))
  mesh = sharding.make_mesh(sharding.MeshConfig(data=8))
  unpacked, _ = sg.generate(str(tmp_path), mesh, None)
  per_shard, counts = sg.generate(str(tmp_path), mesh, 8)
  np.testing.assert_array_equal(per_shard, unpacked)
  assert counts == dict.fromkeys(sg.COLLECTIVES, 0), counts
  whole_batch, counts = sg.generate(str(tmp_path), mesh, 1)
  np.testing.assert_array_equal(whole_batch, unpacked)
  assert counts["all-gather"] > 0, counts  # the check above can see a gather
