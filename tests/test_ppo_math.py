"""PPO's pure math against plain NumPy transcriptions of the textbook definitions (Schulman et
al. 2016 for GAE; the PPO paper's clipped objectives), with padding in awkward places."""

import jax.numpy as jnp
import numpy as np
import pytest

from empathy_jax.training import ppo
from empathy_jax.training.ppo import trainer


def _gae_loop(rewards, values, mask, gamma, lam):
  """Per row: the real tokens as an episode, GAE by the backwards recursion."""
  adv = np.zeros_like(rewards)
  for b in range(rewards.shape[0]):
    steps = np.flatnonzero(mask[b])
    running, next_value = 0.0, 0.0
    for t in steps[::-1]:
      delta = rewards[b, t] + gamma * next_value - values[b, t]
      running = delta + gamma * lam * running
      adv[b, t] = running
      next_value = values[b, t]
  return adv, (adv + values) * mask


def _mask(rng, b, t):
  mask = np.zeros((b, t), np.float32)
  mask[0, :t] = 1                 # full row
  mask[1, :3] = 1                 # right padding
  mask[2, 2:] = 1                 # left padding
  mask[3, [0, 2, 3, 6]] = 1       # holes
  # row 4 has no tokens at all
  mask[5:] = rng.random((b - 5, t)) < 0.7
  return mask


def test_gae_equals_the_backwards_recursion_over_real_tokens():
  rng = np.random.default_rng(0)
  b, t = 8, 7
  rewards = rng.normal(size=(b, t)).astype(np.float32)
  values = rng.normal(size=(b, t)).astype(np.float32)
  mask = _mask(rng, b, t)
  for gamma, lam in ((0.99, 0.95), (1.0, 1.0), (0.9, 0.0)):
    adv, ret = ppo.gae(rewards, values, mask, gamma, lam)
    want_adv, want_ret = _gae_loop(rewards, values, mask, gamma, lam)
    np.testing.assert_allclose(np.asarray(adv), want_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), want_ret, rtol=1e-5, atol=1e-5)
  # lam = 1, gamma = 1: the advantage is the sum of future rewards minus the value.
  adv, _ = ppo.gae(rewards[:1], values[:1], mask[:1], 1.0, 1.0)
  np.testing.assert_allclose(np.asarray(adv)[0], np.cumsum(rewards[0][::-1])[::-1] - values[0],
                             rtol=1e-5, atol=1e-5)


def test_kl_estimators_and_token_rewards():
  rng = np.random.default_rng(1)
  logp = np.log(rng.uniform(0.05, 1.0, (3, 5)))
  ref = np.log(rng.uniform(0.05, 1.0, (3, 5)))
  np.testing.assert_allclose(np.asarray(ppo.kl_penalty(logp, ref, "k1")), logp - ref,
                             rtol=1e-5, atol=1e-6)
  ratio = np.exp(ref - logp)
  k3 = np.asarray(ppo.kl_penalty(logp, ref, "k3"))
  np.testing.assert_allclose(k3, ratio - 1 - np.log(ratio), rtol=1e-5, atol=1e-6)
  assert (k3 >= 0).all()
  with pytest.raises(ValueError, match="k2"):
    ppo.kl_penalty(logp, ref, "k2")
  mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]], np.float32)
  scores = np.array([2.0, -1.0, 5.0], np.float32)
  kl = logp - ref
  got = np.asarray(ppo.token_rewards(kl, scores, mask, 0.1))
  want = -0.1 * kl * mask
  want[0, 2] += 2.0
  want[1, 4] += -1.0  # row 2 has no tokens: no score placed
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_whiten_uses_only_real_entries():
  rng = np.random.default_rng(2)
  x = rng.normal(3.0, 2.0, (6, 7)).astype(np.float32)
  mask = _mask(rng, 6, 7)
  real = x[mask > 0]
  want = (x - real.mean()) / np.sqrt(real.var() + 1e-8) * mask
  np.testing.assert_allclose(np.asarray(ppo.whiten(x, mask)), want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(ppo.whiten(x, mask, shift_mean=False)),
                             want + real.mean() * mask, rtol=1e-4, atol=1e-5)


def test_clipped_losses_and_entropy():
  rng = np.random.default_rng(3)
  b, t, v = 3, 4, 11
  logp, old = rng.normal(-1, 0.3, (b, t)), rng.normal(-1, 0.3, (b, t))
  adv = rng.normal(size=(b, t))
  mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0]], np.float64)
  loss, stats = ppo.policy_loss(logp, old, adv, mask, 0.2)
  terms = []
  for i, j in zip(*np.nonzero(mask)):
    r = np.exp(logp[i, j] - old[i, j])
    terms.append(max(-adv[i, j] * r, -adv[i, j] * min(max(r, 0.8), 1.2)))
  assert float(loss) == pytest.approx(np.mean(terms), rel=1e-5)
  ratio = np.exp(logp - old)[mask > 0]
  assert float(stats["ratio_mean"]) == pytest.approx(ratio.mean(), rel=1e-5)
  # Ratio 1 everywhere (the first minibatch): the loss is -mean(A), nothing clipped.
  loss1, stats1 = ppo.policy_loss(logp, logp, adv, mask, 0.2)
  assert float(loss1) == pytest.approx(-adv[mask > 0].mean(), rel=1e-5)
  assert float(stats1["clip_fraction"]) == 0.0

  values, old_v, ret = (rng.normal(size=(b, t)) for _ in range(3))
  vl, _ = ppo.value_loss(values, old_v, ret, mask, 0.2)
  want = [0.5 * max((values[i, j] - ret[i, j]) ** 2,
                    (old_v[i, j] + np.clip(values[i, j] - old_v[i, j], -0.2, 0.2)
                     - ret[i, j]) ** 2) for i, j in zip(*np.nonzero(mask))]
  assert float(vl) == pytest.approx(np.mean(want), rel=1e-5)
  plain, _ = ppo.value_loss(values, old_v, ret, mask, None)
  assert float(plain) == pytest.approx(0.5 * np.mean(((values - ret) ** 2)[mask > 0]), rel=1e-5)

  logits = rng.normal(size=(b, t, v))
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  ent = -(p * np.log(p)).sum(-1)
  assert float(ppo.entropy(logits, mask)) == pytest.approx(ent[mask > 0].mean(), rel=1e-5)


def test_adaptive_kl_is_trls_controller():
  """TRL's AdaptiveKLController.update(current, n_steps), transcribed: the error clipped to
  +-0.2, the coefficient multiplied by 1 + error * n_steps / horizon; target 0 keeps it."""
  def trl(value, current, n_steps, target, horizon):
    error = np.clip(current / target - 1, -0.2, 0.2)
    return value * (1 + error * n_steps / horizon)

  for current in (0.0, 0.5, 1.1, 3.0):
    ours = float(trainer.adaptive_kl(jnp.float32(0.05), jnp.float32(current), 8, 1.0, 100))
    np.testing.assert_allclose(ours, trl(0.05, current, 8, 1.0, 100), rtol=1e-6)
  assert float(trainer.adaptive_kl(jnp.float32(0.05), jnp.float32(3.0), 8, 0.0, 100)) == float(
      jnp.float32(0.05))
