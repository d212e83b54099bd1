"""The hash-based dropout mask: right keep rate, independent across keys and elements."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from empathy_jax.models import layers as L


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1])
def test_keep_rate_matches_probability(keep):
  mask = np.asarray(L.keep_mask(jax.random.PRNGKey(0), (1000, 1000), keep))
  # 1e6 Bernoulli draws: the standard error of the mean is <= 5e-4.
  assert abs(mask.mean() - keep) < 3e-3


def test_masks_are_independent_across_keys_rows_and_neighbours():
  a = np.asarray(L.keep_mask(jax.random.PRNGKey(1), (512, 512), 0.5), np.float64)
  b = np.asarray(L.keep_mask(jax.random.PRNGKey(2), (512, 512), 0.5), np.float64)
  corr = lambda x, y: np.corrcoef(x.ravel(), y.ravel())[0, 1]
  assert abs(corr(a, b)) < 0.01  # different keys
  assert abs(corr(a[:, :-1], a[:, 1:])) < 0.01  # neighbouring elements
  assert abs(corr(a[:-1], a[1:])) < 0.01  # neighbouring rows
  # Rows are not copies of each other (a counter bug would repeat patterns).
  assert len({row.tobytes() for row in a.astype(np.uint8)}) == a.shape[0]


def test_dropout_module_scales_kept_values_and_is_identity_when_deterministic():
  x = jnp.ones((256, 256))
  drop = L.Dropout(0.25)
  y = drop.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(3)})
  y = np.asarray(y)
  np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.75], rtol=1e-6)
  assert abs(y.mean() - 1.0) < 0.02
  np.testing.assert_array_equal(drop.apply({}, x, deterministic=True), x)
