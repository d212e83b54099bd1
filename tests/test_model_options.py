"""remat, scan_layers and bfloat16 on the three families, in the SFT, reward and PPO gradients
and in generation: remat + scan give what the plain unrolled model gives (gradients of the
scanned model unstacked back to layers); bf16 computes in bf16 with float32 weights, loss and
gradients, close to float32."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hf_fixtures as hf
from empathy_jax.generation.config import GenerationConfig
from empathy_jax.generation.search import generate_ids
from empathy_jax.models import heads, reward_model, weights
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loading import load_model
from empathy_jax.training.loss import batch_nll
from empathy_jax.training.ppo import rollout as R
from empathy_jax.training.ppo import step as S

PPO = S.PPOConfig(GenerationConfig(max_new_tokens=4, sample=True, top_k=0))


def _rollout(model, batch, pad_id):
  """A PPO minibatch replaying the batch's targets as responses, with made-up old
  log-probs, values and advantages (the loss is what is compared, not the rollout)."""
  tokens = batch.target_ids_BxT[:, 1:] if model.is_encoder_decoder else batch.target_ids_BxT
  mask = (batch.target_mask_BxT[:, 1:] if model.is_encoder_decoder
          else batch.target_mask_BxT).astype(np.int32)
  tgt, tgt_mask = R.teacher_forced(model, tokens, mask, pad_id)
  rng = np.random.default_rng(0)
  noise = lambda: jnp.asarray(rng.normal(size=tokens.shape) * mask, jnp.float32)
  return S.Rollout(jnp.asarray(batch.context_ids_BxC), jnp.asarray(batch.context_mask_BxC), tgt,
                   tgt_mask, jnp.asarray(tokens), jnp.asarray(mask), noise() - 3.0,
                   noise() - 3.0, noise(), jnp.zeros(tokens.shape[0]), noise(), noise(), noise())


def _losses(model, params, batch, rollout, pad_id, head):
  """(SFT loss, reward objective, PPO loss) and their gradients, dropout off; `head`: a
  scalar head (the reward model's, and the critic's)."""

  def sft(p):
    total, count = batch_nll(model, p, {k: getattr(batch, k) for k in (
        "context_ids_BxC", "context_mask_BxC", "target_ids_BxT", "target_mask_BxT")})
    return total / count

  def reward(p):
    r = reward_model.response_rewards(model, {"backbone": p, "head": head},
                                      batch.context_ids_BxC, batch.context_mask_BxC,
                                      batch.target_ids_BxT, batch.target_mask_BxT,
                                      exclude_id=None)
    return jnp.sum(r * jnp.arange(1.0, r.shape[0] + 1))

  def ppo(p):
    params = {"policy": p, "critic": {"backbone": p, "head": head}}
    return S.minibatch_loss(params, rollout, model, PPO)[0]

  return {name: jax.value_and_grad(f)(params)
          for name, f in (("sft", sft), ("reward", reward), ("ppo", ppo))}


def _greedy(loaded, batch):
  cfg = GenerationConfig(max_new_tokens=5, eos_token_id=None, pad_token_id=0,
                         decoder_start_token_id=loaded.model.cfg.hf.get(
                             "decoder_start_token_id") or 0)
  return np.asarray(generate_ids(loaded.model, loaded.params, jnp.asarray(batch.context_ids_BxC),
                                 jnp.asarray(batch.context_mask_BxC), cfg,
                                 jax.random.PRNGKey(0), jnp.arange(4)).tokens_BxN)


def _flat(tree):
  return {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  out = {}
  for kind in ("godel", "dialogpt", "blenderbot"):
    d = str(tmp_path_factory.mktemp(kind))
    hf.save_torch_model(kind, d, seed=5)
    out[kind] = d
  return out


def _losses_of_both(reference, other, ed_test):
  """(`_losses` of `reference`, of `other`, the batch): the same batch, rollout and head."""
  batch = hf.real_batch(reference.fmt, ed_test, n=4, offset=8)
  rollout = _rollout(reference.model, batch, reference.fmt.pad_id)
  head = heads.init_scalar_head(jax.random.PRNGKey(1), reference.model.hidden_size)
  run = lambda loaded: jax.jit(functools.partial(
      _losses, loaded.model, batch=batch, rollout=rollout, pad_id=reference.fmt.pad_id,
      head=head))(loaded.params)
  return run(reference), run(other), batch


@pytest.mark.parametrize("kind", ["godel", "dialogpt", "blenderbot"])
def test_remat_and_scan_layers_give_the_unrolled_models_losses_gradients_and_tokens(
    saved, kind, ed_test):
  plain = load_model(saved[kind], RuntimeOptions(dropout_rate=0.0))
  both = load_model(saved[kind], RuntimeOptions(dropout_rate=0.0, remat=True, scan_layers=True))
  assert both.model.cfg.scan_layers and both.model.cfg.remat
  want, got, batch = _losses_of_both(plain, both, ed_test)
  for name in ("sft", "reward", "ppo"):
    np.testing.assert_allclose(float(got[name][0]), float(want[name][0]), rtol=1e-5)
    # The scanned gradients, unstacked to one tree per layer, equal the unrolled ones.
    g_want, g_got = _flat(want[name][1]), _flat(weights.unstack_layers(got[name][1]))
    assert g_got.keys() == g_want.keys()
    scale = max(np.abs(g).max() for g in g_want.values())
    for key, g in g_want.items():
      np.testing.assert_allclose(g_got[key], g, atol=1e-5 * scale, rtol=1e-4, err_msg=key)
    assert scale > 0
  np.testing.assert_array_equal(_greedy(both, batch), _greedy(plain, batch))


def test_bfloat16_computes_in_bf16_with_float32_weights_loss_and_gradients(saved, ed_test):
  f32 = load_model(saved["godel"], RuntimeOptions(dropout_rate=0.0))
  bf16 = load_model(saved["godel"], RuntimeOptions(dropout_rate=0.0, dtype="bfloat16"))
  assert {x.dtype for x in jax.tree.leaves(bf16.params)} == {jnp.dtype(jnp.float32)}
  want, got, batch = _losses_of_both(f32, bf16, ed_test)
  logits = lambda loaded: np.asarray(loaded.model.forward(
      loaded.params, batch.context_ids_BxC, batch.context_mask_BxC, batch.target_ids_BxT,
      batch.target_mask_BxT).logits_BxTxV, np.float32)
  bf16_values = lambda x: (x == x.astype(jnp.bfloat16).astype(np.float32)).all()
  assert bf16_values(logits(bf16)) and not bf16_values(logits(f32))  # bf16 compute ...
  for name in ("sft", "reward", "ppo"):
    loss, grads = got[name]
    assert loss.dtype == jnp.float32  # ... the loss and the gradients are float32
    assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    # bf16 keeps 8 bits of mantissa: the losses agree to about 1%, and are not identical.
    np.testing.assert_allclose(float(loss), float(want[name][0]), rtol=3e-2)
    assert float(loss) != float(want[name][0])
    g_want, g_got = _flat(want[name][1]), _flat(grads)
    cos = np.mean([np.dot(g_got[k].ravel(), g.ravel()) /
                   (np.linalg.norm(g) * np.linalg.norm(g_got[k]) + 1e-30)
                   for k, g in g_want.items() if np.linalg.norm(g) > 0])
    assert cos > 0.95, (name, cos)
