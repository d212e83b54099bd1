"""The PPO iteration on small GODEL- and DialoGPT-format policies: the update's first minibatch
sees ratio 1 (its log-probs are the rollout's), the rollout's pieces equal their definitions,
and a reward a tiny policy can learn rises within a few iterations while the KL to the
reference stays bounded."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

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


def _check_rollout(r, cfg, n):
  """The rollout's pieces against their definitions, on the first rollout (policy = reference)."""
  mask = np.asarray(r.response_mask, np.float32)
  assert mask.sum() > n  # responses of more than one token
  # The rollout's old log-probs are the sampling pass's (float32, no dropout, no truncation);
  # against the reference's replay (the same weights) they differ in the last bits only, so
  # the KL is ~0 and rewards are the score on the last real token.
  np.testing.assert_allclose(np.asarray(r.old_logprobs), np.asarray(r.ref_logprobs), atol=1e-5)
  last = mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)
  want = np.zeros_like(mask)
  want[np.arange(n), last] = np.asarray(r.scores)
  np.testing.assert_allclose(np.asarray(r.rewards), want, atol=1e-5)
  adv, ret = ppo.gae(r.rewards, r.values, r.response_mask, cfg.gamma, cfg.lam)
  np.testing.assert_allclose(np.asarray(r.returns), np.asarray(ret), atol=1e-6)
  np.testing.assert_allclose(np.asarray(r.advantages),
                             np.asarray(ppo.whiten(adv, r.response_mask)), atol=1e-5)


@pytest.mark.parametrize("family,temperature", [("godel", 0.1), ("dialogpt", 0.03)])
def test_ratio_is_one_first_and_a_learnable_score_rises_with_bounded_kl(family, temperature, ed_test,
                                                                        tmp_path):
  # 2-layer models in GODEL's and DialoGPT's formats (quicker to compile than the registry's
  # tiny ones). A random policy is nearly uniform over the vocabulary; at a low temperature it
  # samples from a few tokens a position, among which an update can move mass.
  hf.save_torch_model(family, str(tmp_path / family))
  loaded, batch, cfg, params, roll = _setup(str(tmp_path / family), ed_test, n=8,
                                            new_tokens=8, temperature=temperature, ppo_epochs=2,
                                            num_minibatches=2)
  tx = optax.adamw(1e-3)
  upd = jax.jit(functools.partial(S.update, model=loaded.model, tx=tx, cfg=cfg))
  opt_state = tx.init(params)
  scores, kls = [], []
  for it in range(8):
    r = roll(params, loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
             jax.random.PRNGKey(100 + it), jnp.arange(8), 0.2)
    if it == 0:
      _check_rollout(r, cfg, 8)
    stats = S.rollout_stats(r, loaded.fmt.eos_id)
    scores.append(float(stats["objective/scores"]))
    kls.append(float(stats["objective/kl"]))
    params, opt_state, stats = upd(params, opt_state, r, jax.random.PRNGKey(it))
    dev = np.asarray(stats["val/ratio_max_deviation"])
    assert dev.shape == (4,)
    # The first minibatch sees the rollout's own policy (ratio 1: its log-probs are the
    # rollout's), later ones the updated policy.
    assert dev[0] < 1e-5, dev
    if it == 0:
      assert dev[1:].max() > 1e-4, dev
      assert float(np.asarray(stats["policy/clipfrac"])[0]) == 0.0
  assert np.mean(scores[-2:]) > np.mean(scores[:2]) + 0.1, (scores, kls)
  # The KL penalty holds the policy back: the KL to the reference (summed over 8 tokens of a
  # low-temperature policy) stays under 5 nats a token.
  assert np.isfinite(kls).all() and max(kls) < 40.0, (scores, kls)


def test_a_bfloat16_reference_gives_the_float32_log_probs_to_bf16_precision(ed_test, tmp_path):
  hf.save_torch_model("dialogpt", str(tmp_path / "gpt2"))
  loaded = load_model(str(tmp_path / "gpt2"))
  batch = hf.real_batch(loaded.fmt, ed_test, n=8)
  ids = jnp.asarray(batch.target_ids_BxT)
  mask = jnp.asarray(batch.target_mask_BxT)
  logp = jax.jit(functools.partial(R.policy_outputs, loaded.model))
  full, _ = logp(loaded.params, batch.context_ids_BxC, batch.context_mask_BxC, ids, mask)
  ref = R.stored_as(loaded.params, "bfloat16")
  assert {x.dtype for x in jax.tree.leaves(ref)} == {jnp.dtype(jnp.bfloat16)}
  half, _ = logp(ref, batch.context_ids_BxC, batch.context_mask_BxC, ids, mask)
  m = np.asarray(mask, bool)
  err = np.abs(np.asarray(half) - np.asarray(full))[m]
  # bf16 keeps 8 significand bits: weights move by up to 2**-9 relative, log-probs by ~1e-2.
  assert 0 < err.max() < 0.05, err.max()


def test_packed_contexts_give_the_unpacked_rollout_loss_and_gradients(ed_test, tmp_path):
  """A GODEL policy's teacher-forced passes on packed contexts (the trainer's `context_plan`,
  fixed shapes): the same log-probs and values, the same loss and gradients, and the update's
  first step sees that loss."""
  from empathy_jax import sharding
  from empathy_jax.training.ppo import trainer as T

  hf.save_torch_model("godel", str(tmp_path / "godel"))
  loaded, batch, cfg, params, _ = _setup(str(tmp_path / "godel"), ed_test, n=16, new_tokens=6,
                                         ppo_epochs=2)
  mesh = sharding.make_mesh(sharding.MeshConfig(), [jax.devices()[0]])
  plan = T.context_plan(loaded.model, batch.context_mask_BxC, mesh, cfg)
  assert plan is not None and plan.rows == 12  # 3/4 of the rows: the contexts fit in them
  sample = jax.jit(functools.partial(S.sample, loaded.model, cfg=cfg))
  args = (params, loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
          jax.random.PRNGKey(3), jnp.arange(16))
  r, r_packed = sample(*args), sample(*args, plan=plan)
  np.testing.assert_array_equal(np.asarray(r_packed.response_ids), np.asarray(r.response_ids))
  for name in ("old_logprobs", "ref_logprobs", "values"):
    np.testing.assert_allclose(np.asarray(getattr(r_packed, name)), np.asarray(getattr(r, name)),
                               atol=2e-5, err_msg=name)
  r = S.finish(r, jnp.linspace(-1.0, 1.0, 16), jnp.float32(0.1), cfg=cfg)
  grad = jax.jit(jax.value_and_grad(
      lambda p, pl: S.minibatch_loss(p, r, loaded.model, cfg, pl)[0]))
  (loss, g), (loss_packed, g_packed) = grad(params, None), grad(params, plan)
  np.testing.assert_allclose(float(loss_packed), float(loss), rtol=1e-5)
  flat = lambda tree: np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])
  np.testing.assert_allclose(flat(g_packed), flat(g), atol=1e-5 * np.abs(flat(g)).max())
  tx = optax.adamw(1e-3)
  _, _, stats = jax.jit(functools.partial(S.update, model=loaded.model, tx=tx, cfg=cfg))(
      params, tx.init(params), r, jax.random.PRNGKey(0), plan=plan)
  np.testing.assert_allclose(float(np.asarray(stats["loss/total"])[0]), float(loss), rtol=1e-5)


@pytest.mark.parametrize("top_k,top_p", [(5, 1.0), (0, 0.7), (5, 0.7)])
def test_truncated_sampling_ratio_log_probs_are_the_sampled_distributions(
    ed_test, tmp_path, top_k, top_p):
  """--top_k/--top_p rollouts (the original README's PPO command): the old log-probs are those
  of the truncated, renormalised distribution the sampler drew from -- transformers'
  TopKLogitsWarper / TopPLogitsWarper on its PyTorch model's logits --, every sampled token lies
  inside the truncation set, and the update's loss and gradients are finite. The reference's
  log-probs are untruncated (finite KL)."""
  import torch
  from transformers.generation import (TemperatureLogitsWarper, TopKLogitsWarper,
                                       TopPLogitsWarper)

  torch_model, _ = hf.save_torch_model("dialogpt", str(tmp_path / "gpt2"))
  loaded = load_model(str(tmp_path / "gpt2"))
  batch = hf.real_batch(loaded.fmt, ed_test, n=6)
  gen = resolve({"max_new_tokens": 6, "sample": True, "top_k": top_k, "top_p": top_p,
                 "temperature": 0.8, "beam_width": 1}, {}, loaded.model.cfg)
  cfg = S.PPOConfig(generation=gen)
  params = {"policy": loaded.params,
            "critic": {"backbone": loaded.params,
                       "head": R.zero_value_head(loaded.model.hidden_size)}}
  r = jax.jit(functools.partial(S.sample, loaded.model, cfg=cfg))(
      params, loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
      jax.random.PRNGKey(7), jnp.arange(6))
  mask = np.asarray(r.response_mask, bool)
  assert mask.sum() > 6

  replay = type(batch)(**{**batch.__dict__, "target_ids_BxT": np.asarray(r.response_ids),
                          "target_mask_BxT": np.asarray(r.response_mask)})
  logits, _ = hf.torch_logits(torch_model, replay, False)
  warpers = [TemperatureLogitsWarper(0.8)]
  warpers += [TopKLogitsWarper(top_k)] if top_k else []
  warpers += [TopPLogitsWarper(top_p)] if top_p < 1.0 else []
  flat = torch.from_numpy(logits.reshape(-1, logits.shape[-1])).double()
  for w in warpers:
    flat = w(None, flat)
  logp_all = torch.log_softmax(flat, -1).reshape(logits.shape).numpy()
  ids = np.asarray(r.response_ids)
  want = np.take_along_axis(logp_all, ids[..., None], -1)[..., 0]
  assert np.isfinite(want[mask]).all()  # every sampled token inside the truncation set
  np.testing.assert_allclose(np.asarray(r.old_logprobs)[mask], want[mask], atol=2e-4)
  # The truncation changed the distribution: the untruncated log-probs are lower.
  full = np.take_along_axis(torch.log_softmax(torch.from_numpy(logits).double() / 0.8,
                                              -1).numpy(), ids[..., None], -1)[..., 0]
  assert (want[mask] - full[mask]).max() > 1e-3
  np.testing.assert_allclose(np.asarray(r.ref_logprobs)[mask], full[mask], atol=2e-4)

  r = S.finish(r, jnp.linspace(-1.0, 1.0, 6), jnp.float32(0.1), cfg=cfg)
  (loss, stats), grads = jax.jit(jax.value_and_grad(
      lambda p: S.minibatch_loss(p, r, loaded.model, cfg), has_aux=True))(params)
  assert np.isfinite(float(loss)) and np.isfinite(float(stats["entropy"]))
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))
  assert float(stats["val/ratio_max_deviation"]) < 1e-5  # ratio 1 on its own rollout


def test_ppo_refuses_rollouts_that_are_not_samples():
  gen = resolve({"max_new_tokens": 4, "sample": False, "beam_width": 1}, {},
                load_model("DialoGPT_TINY").model.cfg)
  with pytest.raises(ValueError, match="not samples"):
    S.PPOConfig(generation=gen)


@pytest.mark.parametrize("name", ["GODEL_TINY", "DialoGPT_TINY"])
def test_a_cut_off_response_is_scored_as_its_re_encoded_text(name, ed_test):
  """In-graph scoring (the reward model shares the policy's tokenizer) reads a response cut off
  at max_new_tokens with EOS after it -- the ids the text path (decode, re-encode in the reward
  model's format) scores -- and gives the text path's reward; a response that ended with EOS
  is left as it is."""
  from empathy_jax.models import reward_model
  from empathy_jax.training.ppo import trainer as T

  reward = reward_model.new_reward_model(load_model(name), seed=2)
  fmt = reward.backbone.fmt
  texts = ["I am so sorry to hear that, it must be hard", "That is great news!"]
  full = [t.ids for t in fmt.encode_targets(texts)]
  prefix = T.response_prefix(fmt)
  bodies = [ids[len(prefix):] for ids in full]  # the text's tokens and EOS, no prefix
  assert all(b[-1] == fmt.eos_id for b in bodies)
  n = 8  # the first response cut off (no EOS), the second whole
  cut = bodies[0][:n]
  assert len(bodies[0]) > n and len(bodies[1]) <= n
  rows = [cut, bodies[1] + [fmt.pad_id] * (n - len(bodies[1]))]
  mask = [[1] * n, [1] * len(bodies[1]) + [0] * (n - len(bodies[1]))]
  ids, m = T.scored_responses(jnp.asarray(prefix, jnp.int32), jnp.asarray(rows, jnp.int32),
                              jnp.asarray(mask, jnp.int32), fmt.eos_id, fmt.pad_id)
  ids, m = np.asarray(ids), np.asarray(m)
  assert ids[0][m[0] == 1].tolist() == prefix + cut + [fmt.eos_id]
  assert ids[1][m[1] == 1].tolist() == full[1]
  # The rewards of both paths on one context each.
  contexts = [list(ed_test.contexts[0]), list(ed_test.contexts[0])]
  decoded = [fmt.decode(np.asarray(cut)), texts[1]]
  by_text = reward_model.RewardScorer(reward, batch_size=2)(contexts, decoded)
  ctx = fmt.encode_contexts(contexts)
  width = max(len(c.ids) for c in ctx)
  ctx_ids = np.asarray([[fmt.pad_id] * (width - len(c.ids)) + c.ids for c in ctx])
  ctx_mask = np.asarray([[0] * (width - len(c.ids)) + [1] * len(c.ids) for c in ctx])
  if fmt.is_encoder_decoder:  # encoder inputs right-padded
    ctx_ids = np.asarray([c.ids + [fmt.pad_id] * (width - len(c.ids)) for c in ctx])
    ctx_mask = ctx_mask[:, ::-1].copy()
  in_graph = reward_model.response_rewards(reward.backbone.model, reward.params, ctx_ids,
                                           ctx_mask, ids, m, exclude_id=None)
  assert fmt.decode(np.asarray(cut)).strip() and decoded[0] != texts[0]
  np.testing.assert_allclose(np.asarray(in_graph), by_text, atol=1e-5)


@pytest.mark.parametrize("name", ["GODEL_TINY", "DialoGPT_TINY"])
def test_old_log_probs_come_from_the_sampling_pass_and_equal_the_replay(name, ed_test,
                                                                        monkeypatch):
  """Dropout off, no truncation, float32: PPO's and GRPO's rollouts take the old log-probs from
  the sampling pass (the policy's teacher-forced replay is not traced at all: one forward fewer
  an iteration), equal to the replay within 1e-5; any other setting keeps the replay."""
  from empathy_jax.training import grpo

  loaded, batch, cfg, params, _ = _setup(name, ed_test, n=8, new_tokens=8, temperature=0.7)
  assert S.sampled_logprobs_are_old(cfg, loaded.model)
  args = (params, loaded.params, batch.context_ids_BxC, batch.context_mask_BxC,
          jax.random.PRNGKey(5), jnp.arange(8))
  r = jax.jit(functools.partial(S.sample, loaded.model, cfg=cfg))(*args)
  mask = np.asarray(r.response_mask, bool)
  assert mask.sum() > 16
  replay, _ = R.policy_outputs(loaded.model, loaded.params, batch.context_ids_BxC,
                               batch.context_mask_BxC, r.target_ids, r.target_mask, 0.7)
  np.testing.assert_allclose(np.asarray(r.old_logprobs)[mask], np.asarray(replay)[mask],
                             atol=1e-5)
  assert (np.asarray(r.old_logprobs)[~mask] == 0).all()

  group = jax.jit(functools.partial(grpo.sample_groups, model=loaded.model,
                                    gen=cfg.generation, g=2))(
      params, loaded.params, batch.context_ids_BxC[:4], batch.context_mask_BxC[:4],
      jnp.arange(4), jax.random.PRNGKey(6))
  gmask = np.asarray(group.response_mask, bool)
  replay, _ = R.policy_outputs(loaded.model, loaded.params, group.context_ids,
                               group.context_mask, group.target_ids, group.target_mask, 0.7)
  np.testing.assert_allclose(np.asarray(group.old_logprobs)[gmask], np.asarray(replay)[gmask],
                             atol=1e-5)

  # The teacher-forced passes traced: the reference's alone, or the policy's replay too.
  passes = []
  original = R.policy_outputs
  monkeypatch.setattr(R, "policy_outputs",
                      lambda *a, **k: (passes.append(1), original(*a, **k))[1])
  traced = lambda c, m=loaded.model: (passes.clear(), jax.eval_shape(
      functools.partial(S.sample, m, cfg=c), *args), len(passes))[2]
  assert traced(cfg) == 1
  truncated = dataclasses.replace(cfg, generation=dataclasses.replace(cfg.generation, top_k=5))
  assert traced(truncated) == 2
  assert traced(dataclasses.replace(cfg, policy_dropout=True)) == 2
  bf16 = type(loaded.model)(loaded.model.cfg.replace(dtype=jnp.bfloat16))
  assert not S.sampled_logprobs_are_old(cfg, bf16)
  assert traced(cfg, bf16) == 2
