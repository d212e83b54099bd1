"""The PPO iteration on tiny GODEL and DialoGPT policies: the update's first minibatch sees ratio
1 (its log-probs are the rollout's), the rollout's pieces equal their definitions, and a reward
a tiny policy can learn rises within a few iterations while the KL to the reference stays
bounded."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

import hf_fixtures as hf
from empathy_jax.generation.config import resolve
from empathy_jax.models.loading import load_model
from empathy_jax.training import ppo
from empathy_jax.training.ppo import rollout as R
from empathy_jax.training.ppo import step as S


def _upper_half_share(vocab):
  """A score a tiny policy can learn: the share of response tokens in the upper half of the
  vocabulary (about 0.5 for a random policy)."""
  def score(ctx, ctx_mask, ids, mask):
    del ctx, ctx_mask
    mask = mask.astype(jnp.float32)
    return jnp.sum((ids >= vocab // 2) * mask, 1) / jnp.maximum(mask.sum(1), 1.0)
  return score


def _setup(name, ed_test, n=8, new_tokens=8, temperature=1.0, **ppo_args):
  loaded = load_model(name)  # a registry name or a folder
  batch = hf.real_batch(loaded.fmt, ed_test, n=n)
  gen = resolve({"max_new_tokens": new_tokens, "sample": True, "top_k": 0, "top_p": 1.0,
                 "temperature": temperature, "beam_width": 1}, {}, loaded.model.cfg)
  cfg = S.PPOConfig(generation=gen, **ppo_args)
  params = {"policy": loaded.params,
            "critic": {"backbone": loaded.params,
                       "head": R.zero_value_head(loaded.model.hidden_size)}}
  score = _upper_half_share(loaded.model.cfg.vocab_size)
  roll = jax.jit(functools.partial(S.make_rollout, loaded.model, cfg=cfg, score_fn=score))
  return loaded, batch, cfg, params, roll


def test_first_minibatch_ratio_is_one_and_the_rollout_is_consistent(ed_test, tmp_path):
  """An encoder-decoder policy here (a 2+2-layer T5 in GODEL's format: quicker to compile than
  GODEL_TINY); DialoGPT's first-minibatch ratio is checked in the learning test below."""
  hf.save_torch_model("godel", str(tmp_path / "t5"))
  loaded, batch, cfg, params, roll = _setup(str(tmp_path / "t5"), ed_test, ppo_epochs=2,
                                            num_minibatches=2)
  r = roll(params, loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
           jax.random.PRNGKey(0), jnp.arange(8), 0.1)
  mask = np.asarray(r.response_mask, np.float32)
  assert mask.sum() > 8  # responses of more than one token
  # The rollout's old log-probs are the teacher-forced replay's; against the reference
  # (the same weights) the KL is 0, so rewards are the score on the last real token.
  np.testing.assert_allclose(np.asarray(r.old_logprobs), np.asarray(r.ref_logprobs), atol=1e-6)
  last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
  want = np.zeros_like(mask)
  want[np.arange(8), last] = np.asarray(r.scores)
  np.testing.assert_allclose(np.asarray(r.rewards), want, atol=1e-6)
  adv, ret = ppo.gae(r.rewards, r.values, r.response_mask, cfg.gamma, cfg.lam)
  np.testing.assert_allclose(np.asarray(r.returns), np.asarray(ret), atol=1e-6)
  np.testing.assert_allclose(np.asarray(r.advantages),
                             np.asarray(ppo.whiten(adv, r.response_mask)), atol=1e-5)

  tx = optax.adamw(1e-3)
  upd = jax.jit(functools.partial(S.update, model=loaded.model, tx=tx, cfg=cfg))
  _, _, stats = upd(params, tx.init(params), r, jax.random.PRNGKey(1))
  dev = np.asarray(stats["val/ratio_max_deviation"])
  assert dev.shape == (4,)
  assert dev[0] < 1e-5, dev  # the first minibatch: the rollout's own policy
  assert dev[-1] > 1e-4, dev  # later ones see the updated policy
  assert float(np.asarray(stats["policy/clipfrac"])[0]) == 0.0


def test_a_learnable_score_rises_with_bounded_kl(ed_test, tmp_path):
  # A random policy is nearly uniform over the vocabulary; at a low temperature it samples
  # from a few tokens a position, among which an update can move mass.
  hf.save_torch_model("dialogpt", str(tmp_path / "gpt2"))  # 2 layers: quick to compile
  loaded, batch, cfg, params, roll = _setup(str(tmp_path / "gpt2"), ed_test, n=8,
                                            new_tokens=8, temperature=0.03, ppo_epochs=2,
                                            num_minibatches=2)
  tx = optax.adamw(1e-3)
  upd = jax.jit(functools.partial(S.update, model=loaded.model, tx=tx, cfg=cfg))
  opt_state = tx.init(params)
  scores, kls = [], []
  for it in range(8):
    r = roll(params, loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
             jax.random.PRNGKey(100 + it), jnp.arange(8), 0.2)
    stats = S.rollout_stats(r, loaded.fmt.eos_id)
    scores.append(float(stats["objective/scores"]))
    kls.append(float(stats["objective/kl"]))
    params, opt_state, stats = upd(params, opt_state, r, jax.random.PRNGKey(it))
    dev = np.asarray(stats["val/ratio_max_deviation"])
    assert dev[0] < 1e-5 and dev[1:].max() > 1e-4, dev  # the rollout policy, then updated
  assert np.mean(scores[-2:]) > np.mean(scores[:2]) + 0.1, (scores, kls)
  # The KL penalty holds the policy back: the KL to the reference (summed over 8 tokens of a
  # temperature-0.03 policy) stays under 5 nats a token and comes down from its peak.
  assert np.isfinite(kls).all() and max(kls) < 40.0 and kls[-1] < max(kls), (scores, kls)
