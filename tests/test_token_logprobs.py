"""The fused log p(target): value and gradient equal autodiff of log_softmax + gather, and the
model's `target_logprobs` equals log_softmax of `forward`'s logits for every family."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from empathy_jax.models.loading import load_model
from empathy_jax.models.token_logprobs import target_logprobs


def _reference(logits, targets):
  logp = jax.nn.log_softmax(logits, axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def test_value_and_gradient_match_autodiff():
  rng = np.random.default_rng(0)
  logits = jnp.asarray(rng.normal(size=(3, 5, 97)) * 4, jnp.float32)
  targets = jnp.asarray(rng.integers(0, 97, size=(3, 5)), jnp.int32)
  weights = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
  np.testing.assert_allclose(target_logprobs(logits, targets), _reference(logits, targets),
                             atol=1e-5)
  ours = jax.grad(lambda x: jnp.sum(weights * target_logprobs(x, targets)))(logits)
  ref = jax.grad(lambda x: jnp.sum(weights * _reference(x, targets)))(logits)
  np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize("name", ["GODEL_TINY", "DialoGPT_TINY", "BlenderBot_TINY"])
def test_model_target_logprobs_match_forward_logits(name):
  from benchmarks.common import BenchConfig, test_batch  # real test rows

  loaded = load_model(name)
  b = test_batch(loaded, BenchConfig(mode="", model=name), n=4)
  args = (loaded.params, b.context_ids_BxC, b.context_mask_BxC, b.target_ids_BxT,
          b.target_mask_BxT)
  out = loaded.model.forward(*args)
  scores = loaded.model.target_logprobs(*args)
  mask = np.asarray(out.loss_mask_BxT) > 0
  ref = np.asarray(_reference(out.logits_BxTxV, jnp.asarray(b.target_ids_BxT)))
  np.testing.assert_allclose(np.asarray(scores.logprobs_BxT)[mask], ref[mask], atol=2e-5)
  assert np.all(np.asarray(scores.logprobs_BxT)[~mask] == 0.0)
  np.testing.assert_allclose(scores.hidden_BxTxD, out.hidden_BxTxD, atol=1e-6)
