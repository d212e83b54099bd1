"""The reward losses against a plain-Python transcription of the original's per-context loop."""

import math

import numpy as np
import pytest

from empathy_jax.training import reward


def original_loop(rewards, ratings):
  """The original's train step for one context, transcribed: a Python loop over rated pairs."""
  losses, correct, decided = [], 0, 0
  for a, b, factor in ratings:
    r_a, r_b = rewards[int(a)], rewards[int(b)]
    if factor == 0:
      losses.append((r_a - r_b) ** 2)
      continue
    d = r_a - r_b if factor < 0 else r_b - r_a
    losses.append(-math.sqrt(abs(factor)) * math.log(1.0 / (1.0 + math.exp(-d))))
    decided += 1
    correct += d > 0
  return sum(losses) / len(losses), (correct / decided if decided else float("nan"))


def _contexts(seed=0):
  rng = np.random.default_rng(seed)
  out = []
  for n_resp, n_pairs in ((4, 6), (3, 3), (4, 5), (2, 1)):
    rewards = rng.normal(0, 1.5, n_resp)
    pairs = [(a, b) for a in range(n_resp) for b in range(n_resp) if a != b]
    chosen = rng.permutation(len(pairs))[:n_pairs]
    factors = rng.choice([-1.0, -0.5, 0.0, 0.5, 1.0], n_pairs)
    out.append((rewards, [[*pairs[i], f] for i, f in zip(chosen, factors)]))
  # An all-tie context, and one where both signs and magnitudes appear for sure.
  out.append((rng.normal(size=3), [[0, 1, 0.0], [1, 2, 0.0]]))
  out.append((np.array([0.3, -1.2, 2.0, 0.1]), [[0, 1, -1.0], [2, 3, 0.5], [1, 3, -0.5],
                                                [0, 2, 1.0], [3, 0, 0.0]]))
  return out


def test_original_pairwise_loss_equals_the_original_loop():
  for rewards, ratings in _contexts():
    loss, accuracy = reward.original_pairwise_loss(rewards, ratings)
    want_loss, want_accuracy = original_loop(rewards, ratings)
    assert float(loss) == pytest.approx(want_loss, rel=1e-5)
    if math.isnan(want_accuracy):
      assert np.isnan(float(accuracy))  # an all-tie context has no accuracy, not an error
    else:
      assert float(accuracy) == pytest.approx(want_accuracy, rel=1e-6)


def _batch(contexts, pairs=8, responses=4):
  b = len(contexts)
  rewards = np.zeros((b, responses), np.float32)
  a_idx, b_idx = np.zeros((b, pairs), np.int32), np.zeros((b, pairs), np.int32)
  factor, mask = np.zeros((b, pairs), np.float32), np.zeros((b, pairs), np.float32)
  for i, (r, ratings) in enumerate(contexts):
    rewards[i, :len(r)] = r
    for j, (a, bb, f) in enumerate(ratings):
      a_idx[i, j], b_idx[i, j], factor[i, j], mask[i, j] = a, bb, f, 1.0
  return rewards, a_idx, b_idx, factor, mask


def test_batched_loss_is_the_mean_of_per_context_losses():
  contexts = _contexts(1)
  terms = reward.pairwise_terms(*_batch(contexts + [(np.zeros(2), [])]))  # + a context without pairs
  per_context = [original_loop(r, ratings) for r, ratings in contexts]
  np.testing.assert_allclose(np.asarray(terms["loss"][:-1]), [l for l, _ in per_context],
                             rtol=1e-5)
  assert float(reward.batch_loss(terms)) == pytest.approx(
      np.mean([l for l, _ in per_context]), rel=1e-5)
  # Accuracy over every decided pair of the batch, ties' squared error over every tie.
  decided = sum(1 for _, ratings in contexts for *_, f in ratings if f != 0)
  correct = sum(1 for r, ratings in contexts for a, b, f in ratings
                if f != 0 and ((r[a] - r[b]) if f < 0 else (r[b] - r[a])) > 0)
  assert float(np.sum(terms["decided"])) == decided
  assert float(np.sum(terms["correct"])) == correct
  tie_sq = [(r[a] - r[b]) ** 2 for r, ratings in contexts for a, b, f in ratings if f == 0]
  assert float(np.sum(terms["ties"])) == len(tie_sq)
  assert float(np.sum(terms["tie_sq_sum"])) == pytest.approx(sum(tie_sq), rel=1e-5)
  assert np.asarray(terms["has_pairs"]).tolist() == [1.0] * len(contexts) + [0.0]


def test_bradley_terry_with_margin_and_centring():
  r = np.array([[1.0, -0.5, 0.25]], np.float32)
  a, b = np.array([[0, 2, 1]]), np.array([[1, 1, 2]])
  factor = np.array([[-1.0, 0.5, 0.0]], np.float32)  # 0 better than 1; 1 better than 2; a tie
  terms = reward.pairwise_terms(r, a, b, factor, np.ones((1, 3)), loss="bradley_terry",
                                margin=0.2, center_coef=0.01)
  sig = lambda x: 1 / (1 + math.exp(-x))
  pairs = [(1.0, -0.5), (-0.5, 0.25)]  # (preferred, other); the tie is left out
  want = np.mean([-math.log(sig(c - o - 0.2)) + 0.01 * (c + o) ** 2 for c, o in pairs])
  assert float(terms["loss"][0]) == pytest.approx(want, rel=1e-5)
  assert float(terms["decided"][0]) == 2 and float(terms["correct"][0]) == 1
