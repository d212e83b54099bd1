"""Encoder sequence packing: the row plan, and states equal to the unpacked encoder's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from empathy_jax.models.loading import load_model
from empathy_jax.models.packing import packed_rows


def _mask(lengths, width, left_padded=()):
  mask = np.zeros((len(lengths), width), np.int32)
  for i, n in enumerate(lengths):
    if i in left_padded:
      mask[i, width - n:] = 1
    else:
      mask[i, :n] = 1
  return mask


def test_packed_rows_is_first_fit_decreasing_rounded_to_an_eighth_of_the_batch():
  # 5, 4, 3, 2, 2 into width 8: [5+3], [4+2+2] -> 2 rows (batch 5: no rounding).
  assert packed_rows(_mask([2, 5, 3, 4, 2], 8)) == 2
  # Batch 16: rows rounded up to a multiple of 2; eight full rows stay eight.
  assert packed_rows(_mask([8] * 3 + [1] * 13, 8)) == 6  # 3 full + 13 ones in 2 rows = 5 -> 6
  assert packed_rows(_mask([8] * 8 + [0] * 8, 8)) == 8
  # Never more rows than examples.
  assert packed_rows(_mask([8] * 16, 8)) == 16


@pytest.mark.parametrize("name", ["GODEL_TINY", "BlenderBot_TINY"])
def test_packed_encoder_states_equal_unpacked(name):
  loaded = load_model(name)
  width = 32
  lengths = [30, 3, 17, 9, 1, 12, 25, 5]
  mask = _mask(lengths, width, left_padded=(3,))
  rng = np.random.default_rng(0)
  ids = np.where(mask == 1, rng.integers(5, 1000, mask.shape), 0).astype(np.int32)
  rows = packed_rows(mask)
  assert rows < len(lengths)
  full = np.asarray(loaded.model.encode(loaded.params, jnp.asarray(ids), jnp.asarray(mask)))
  encode = jax.jit(lambda p, i, m, r: loaded.model.encode(p, i, m, packed_rows=r),
                   static_argnums=3)
  real = mask[..., None] == 1
  for r in (rows, 1):  # 1 row cannot hold them: the unpacked fallback, same states
    got = np.asarray(encode(loaded.params, jnp.asarray(ids), jnp.asarray(mask), r))
    np.testing.assert_allclose(np.where(real, got, 0), np.where(real, full, 0), atol=2e-5)
    assert (got[~real[..., 0]] == 0).all()
