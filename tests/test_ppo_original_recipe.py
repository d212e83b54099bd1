"""`--recipe original` against a PyTorch transcription of the original's PPO step
(`original_reference.ppo_step_reference`, written from the original's `rlhf_supervisor.py`
alone): two updates of a small GODEL-format T5 from the same weights on the same rollouts (the
responses given, not sampled; dropout off), compared on the losses, the per-token rewards,
advantages and returns, and every parameter after each step (SGD, so each parameter's change
is the gradient itself)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import hf_fixtures as hf
import original_reference as ref
from empathy_jax import families
from empathy_jax.generation.config import GenerationConfig, resolve
from empathy_jax.models import weights
from empathy_jax.models.loading import load_model
from empathy_jax.training.ppo import rollout as R
from empathy_jax.training.ppo import step as S
from empathy_jax.training.ppo.trainer import ORIGINAL_RECIPE, PPORunConfig

SETTINGS = dict(kl_penalty=0.1, gamma=0.99, lam=0.95, clip_epsilon=0.2, vf_coeff=1.0,
                entropy_coeff=0.01)
LR = 0.5


def _responses(rng, fmt, b, n):
  """Rows of 1..n-1 random tokens then EOS, right-padded: (ours [B, N] ids and mask, the
  original's enc_outputs [B, N+1]: T5's start token 0 first, padded with PAD_IDX)."""
  ids = np.zeros((b, n), np.int32)
  mask = np.zeros((b, n), np.int32)
  enc = np.full((b, n + 1), fmt.pad_id, np.int64)
  enc[:, 0] = 0
  for i in range(b):
    length = int(rng.integers(2, n + 1))
    row = list(rng.integers(3, 32000, length - 1)) + [fmt.eos_id]
    ids[i, :length], mask[i, :length] = row, 1
    enc[i, 1:length + 1] = row
  return ids, mask, enc


def _original_step(torch_side, rng, fmt, ctx, cmask, dropout_p):
  """Random responses and scores for 4 contexts, and what the original's PPO step (its
  transcription, `torch_side` = tuned, frozen, value head, optimizer) computes on them."""
  ids, mask, enc = _responses(rng, fmt, 4, 8)
  scores = rng.normal(0.0, 1.0, 4).astype(np.float32)
  want = ref.ppo_step_reference(
      *torch_side, torch.from_numpy(ctx).long(), torch.from_numpy(cmask).long(),
      torch.from_numpy(enc), fmt.pad_id, torch.from_numpy(scores), **SETTINGS,
      dropout_p=dropout_p)
  return ids, mask, scores, want


def _head(value_head):
  """Our value head from the original's torch.nn.Linear(hidden, 1)."""
  return {"kernel": jnp.asarray(value_head.weight.detach().numpy()[0]),
          "bias": jnp.asarray(value_head.bias.detach().numpy()[0])}


def _torch_params(model, cfg_ours, abstract):
  state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
  return weights.hf_to_params(state, families.weight_map(cfg_ours), abstract)


def test_recipe_original_equals_the_originals_step_over_two_updates(tmp_path, ed_test):
  torch_model, fmt = hf.save_torch_model("godel", str(tmp_path / "godel"))
  loaded = load_model(str(tmp_path / "godel"))
  model = loaded.model
  tuned = torch_model.train()  # the original's Lightning module trains in train mode
  for module in tuned.modules():  # ... with dropout 0 here, so both sides are deterministic
    if isinstance(module, torch.nn.Dropout):
      module.p = 0.0
    if isinstance(getattr(module, "dropout", None), float):  # T5Attention's functional dropout
      module.dropout = 0.0
  frozen = type(torch_model).from_pretrained(str(tmp_path / "godel")).eval()
  d = model.hidden_size
  torch.manual_seed(1)
  value_head = torch.nn.Linear(d, 1)
  optimizer = torch.optim.SGD(list(tuned.parameters()) + list(value_head.parameters()), lr=LR)

  gen = resolve({"max_new_tokens": 8, "sample": True, "top_k": 0, "top_p": 1.0,
                 "temperature": 1.0, "beam_width": 1, "decoder_start_token_id": 0}, {},
                model.cfg)
  cfg = S.PPOConfig(generation=gen, recipe="original", ratio_against="reference", ppo_epochs=1,
                    shared_critic=True, **{k: v for k, v in SETTINGS.items()
                                           if k != "kl_penalty"})
  start = jax.tree.map(jnp.asarray, loaded.params)
  params = {"policy": start, "critic": {"head": _head(value_head)}}
  ref_params = start
  tx = optax.sgd(LR)
  opt_state = tx.init(params)
  rng = np.random.default_rng(0)
  batch = hf.real_batch(fmt, ed_test, n=4)
  ctx, cmask = np.asarray(batch.context_ids_BxC), np.asarray(batch.context_mask_BxC)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), loaded.params)

  @jax.jit
  def ours(params, opt_state, tgt, tgt_mask, ids, mask, scores):
    r = S.from_responses(model, params, ref_params, ctx, cmask, tgt, tgt_mask, mask, ids,
                         cfg=cfg)
    r = S.finish(r, scores, SETTINGS["kl_penalty"], cfg=cfg)
    return S.update(params, opt_state, r, jax.random.PRNGKey(0), model=model, tx=tx, cfg=cfg,
                    kl_coef=SETTINGS["kl_penalty"])

  for step in range(2):
    ids, mask, scores, want = _original_step((tuned, frozen, value_head, optimizer), rng, fmt,
                                             ctx, cmask, dropout_p=0.0)
    tgt, tgt_mask = R.teacher_forced(model, ids, mask, 0)
    params, opt_state, stats = ours(params, opt_state, tgt, tgt_mask, ids, mask, scores)
    assert float(stats["loss/policy"][0]) == pytest.approx(want["ppo_loss"], abs=2e-6), step
    assert float(stats["loss/value"][0]) == pytest.approx(want["vf_loss"], rel=1e-5), step
    assert -float(stats["entropy"][0]) == pytest.approx(want["entropy_loss"], rel=1e-5), step
    assert float(stats["loss/total"][0]) == pytest.approx(want["loss"], rel=1e-5), step
    # Every parameter after the step: SGD moves each by lr x its gradient.
    theirs = _torch_params(tuned, model.cfg, abstract)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params["policy"]),
                            jax.tree.leaves(theirs)):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=1e-4,
                                 err_msg=f"step {step}: {jax.tree_util.keystr(path)}")
    np.testing.assert_allclose(np.asarray(params["critic"]["head"]["kernel"]),
                               value_head.weight.detach().numpy()[0], atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(float(params["critic"]["head"]["bias"]),
                               float(value_head.bias.detach()[0]), atol=2e-5)
  # The two steps moved the weights well beyond the tolerance (the comparison has teeth).
  moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(
      jax.tree.leaves(params["policy"]), jax.tree.leaves(start)))
  assert moved > 1e-2


def test_recipe_original_sets_what_it_fixes_and_refuses_contradictions(tmp_path):
  from conftest import ED_DIR

  base = dict(dataset_dir=ED_DIR, output_dir=str(tmp_path), reward_model_dir="x",
              model="GODEL_TINY")
  cfg = PPORunConfig(**base, recipe="original")
  assert {k: getattr(cfg, k) for k in ORIGINAL_RECIPE} == ORIGINAL_RECIPE
  assert cfg.optimizer().schedule == "epoch"
  assert cfg.ppo(GenerationConfig()).recipe == "original"
  PPORunConfig(**base, recipe="original", ppo_epochs=1)  # the recipe's own value: fine
  with pytest.raises(ValueError, match="--ppo_epochs 2 contradicts --recipe original"):
    PPORunConfig(**base, recipe="original", ppo_epochs=2)


def test_original_validation_loss_equals_the_originals_val_step(tmp_path, ed_test):
  """`best/` under `--recipe original` is the lowest `val_loss`: the original's
  `validation_step`, i.e. its PPO loss in eval mode (no dropout anywhere, no update) -- the
  reference's step with the modules in eval mode and a learning rate of 0."""
  from empathy_jax.training.ppo.trainer import original_val_loss  # pylint: disable=import-outside-toplevel

  torch_model, fmt = hf.save_torch_model("godel", str(tmp_path / "godel"))
  loaded = load_model(str(tmp_path / "godel"))
  model = loaded.model
  tuned = torch_model.eval()
  frozen = type(torch_model).from_pretrained(str(tmp_path / "godel")).eval()
  torch.manual_seed(2)
  with torch.no_grad():  # a reference apart from the policy: ratios != 1, the policy term counts
    for p in frozen.parameters():
      p.add_(0.05 * torch.randn_like(p))
  value_head = torch.nn.Linear(model.hidden_size, 1).eval()
  optimizer = torch.optim.SGD(list(tuned.parameters()) + list(value_head.parameters()), lr=0.0)
  gen = resolve({"max_new_tokens": 8, "sample": True, "beam_width": 1,
                 "decoder_start_token_id": 0}, {}, model.cfg)
  # Train-mode settings on: validation must switch them off.
  cfg = S.PPOConfig(generation=gen, recipe="original", ratio_against="reference", ppo_epochs=1,
                    shared_critic=True, policy_dropout=True, value_head_dropout=0.5,
                    **{k: v for k, v in SETTINGS.items() if k != "kl_penalty"})
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), loaded.params)
  reference = jax.tree.map(jnp.asarray, _torch_params(frozen, model.cfg, abstract))
  params = {"policy": jax.tree.map(jnp.asarray, loaded.params),
            "critic": {"head": _head(value_head)}}
  batch = hf.real_batch(fmt, ed_test, n=4)
  ctx, cmask = np.asarray(batch.context_ids_BxC), np.asarray(batch.context_mask_BxC)
  rng = np.random.default_rng(3)
  ids, mask, scores, want = _original_step((tuned, frozen, value_head, optimizer), rng, fmt, ctx,
                                           cmask, dropout_p=0.5)
  got = jax.jit(lambda p, s: original_val_loss(p, reference, ctx, cmask, ids, mask, s,
                                               SETTINGS["kl_penalty"], model=model, ppo=cfg))
  assert float(got(params, scores)) == pytest.approx(want["loss"], rel=1e-5)
  # The loss depends on the scores it is given (the comparison is not of constants).
  assert float(got(params, -scores)) != pytest.approx(want["loss"], rel=1e-3)


@pytest.mark.parametrize("family", ["godel", "dialogpt"])
def test_original_recipe_samples_its_rollouts_with_dropout_on(tmp_path, ed_test, family):
  """The original samples in train mode: the policy's dropout changes the rollout (top-k 1
  here, so dropout is the only randomness); with a dropout rate of 0 the train-mode path
  gives the eval-mode rollout exactly."""
  from empathy_jax.models.configs import RuntimeOptions  # pylint: disable=import-outside-toplevel

  _, fmt = hf.save_torch_model(family, str(tmp_path / family))
  batch = hf.real_batch(fmt, ed_test, n=8)
  ctx, cmask = np.asarray(batch.context_ids_BxC), np.asarray(batch.context_mask_BxC)

  def rollout_tokens(dropout_rate, policy_dropout, seed=0):
    loaded = load_model(str(tmp_path / family), RuntimeOptions(dropout_rate=dropout_rate))
    gen = resolve({"max_new_tokens": 6, "sample": True, "top_k": 1, "beam_width": 1}, {},
                  loaded.model.cfg)
    cfg = S.PPOConfig(generation=gen, recipe="original", ratio_against="reference", ppo_epochs=1,
                      shared_critic=True, policy_dropout=policy_dropout)
    params = {"policy": jax.tree.map(jnp.asarray, loaded.params),
              "critic": {"head": R.zero_value_head(loaded.model.hidden_size)}}
    r = jax.jit(lambda p: S.sample(loaded.model, p, p["policy"], ctx, cmask,
                                   jax.random.PRNGKey(seed), jnp.arange(8), cfg=cfg))(params)
    return np.asarray(r.response_ids) * np.asarray(r.response_mask)

  eval_mode, rate_0 = rollout_tokens(0.5, False), rollout_tokens(0.0, False)
  np.testing.assert_array_equal(rollout_tokens(0.0, True), rate_0)
  np.testing.assert_array_equal(rate_0, eval_mode)  # dropout unused
  train_mode = rollout_tokens(0.5, True)
  assert (train_mode != eval_mode).any(axis=1).sum() >= 2
  np.testing.assert_array_equal(rollout_tokens(0.5, True), train_mode)  # keyed: reproducible
  assert (rollout_tokens(0.5, True, seed=1) != train_mode).any()
