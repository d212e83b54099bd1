"""DPO, GRPO and RLOO: their public functions against NumPy transcriptions of their definitions
(the DPO, IPO and cDPO losses; GRPO's and RLOO's group advantages), sequence log-probs against
transformers' PyTorch models on ragged rows, a learnable preference learnt by DPO on GODEL and
DialoGPT policies, a learnable score raised by GRPO and RLOO, and both launchers on a small
policy: 8 simulated devices give the one-device run's numbers, a run SIGKILLed at an unplanned
moment resumes to the uninterrupted result bit for bit, and best/ is a plain dialogue model."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dataclasses

import hf_fixtures as hf
from conftest import ED_DIR, REPO, REWARD_DIR
from kills import kill_after_first_checkpoint, one_device_env
from preferences import synthetic_preference
from empathy_jax.data.dialogue_dataset import load_dialogue_split, load_reward_split, split_dir
from empathy_jax.generation.config import resolve
from empathy_jax.models import model_dir, reward_model
from empathy_jax.models.loading import load_model
from empathy_jax.training import dpo, grpo
from empathy_jax.training.metrics_log import read_scalars
from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer
from empathy_jax.training.reward_trainer import RewardData
from empathy_jax.training.state import TrainState

# -- the definitions, transcribed in NumPy ----------------------------------------------------


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def _numpy_dpo(pc, pr, rc, rr, beta, loss_type, eps):
  """Rafailov et al. (DPO, eq. 7), Azar et al. (IPO, eq. 17 with tau = beta), Mitchell's cDPO."""
  h = (pc - rc) - (pr - rr)  # log-ratio of chosen minus log-ratio of rejected
  if loss_type == "ipo":
    return (h - 1.0 / (2.0 * beta)) ** 2
  return -(1.0 - eps) * _log_sigmoid(beta * h) - eps * _log_sigmoid(-beta * h)


def _numpy_group(r, scale, eps):
  out = np.zeros(r.shape)
  for i, row in enumerate(r.tolist()):  # Python floats: float64 arithmetic
    mean = sum(row) / len(row)
    std = np.sqrt(sum((x - mean) ** 2 for x in row) / (len(row) - 1))
    out[i] = [(x - mean) / (std + eps) if scale else x - mean for x in row]
  return out


def _numpy_rloo(r):
  g = r.shape[1]
  return np.asarray([[x - (sum(row) - x) / (g - 1) for x in row] for row in r.tolist()])


@pytest.mark.parametrize("loss_type,eps", [("sigmoid", 0.0), ("sigmoid", 0.1), ("ipo", 0.0)])
def test_dpo_loss_equals_its_definition(loss_type, eps):
  rng = np.random.default_rng(0)
  pc, pr, rc, rr = (rng.normal(-30, 8, 64) for _ in range(4))
  for beta in (0.1, 0.5):
    got = dpo.dpo_loss(jnp.asarray(pc), jnp.asarray(pr), jnp.asarray(rc), jnp.asarray(rr), beta,
                       loss_type, eps)
    np.testing.assert_allclose(got, _numpy_dpo(pc, pr, rc, rr, beta, loss_type, eps),
                               rtol=2e-5, atol=1e-5)
  with pytest.raises(ValueError, match="unknown DPO loss"):
    dpo.dpo_loss(pc, pr, rc, rr, 0.1, "hinge")


@pytest.mark.parametrize("g", [2, 8])
def test_group_advantages_equal_their_definitions(g):
  rng = np.random.default_rng(g)
  rewards = rng.normal(0, 1, (5, g)).astype(np.float32)
  rewards[1] = 0.7  # a group of ties: no signal, no division by zero
  rewards[2, :2] = rewards[2, 0]  # a tie inside a group
  for scale in (True, False):
    np.testing.assert_allclose(grpo.group_advantages(rewards, scale, 1e-4),
                               _numpy_group(rewards, scale, 1e-4), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grpo.rloo_advantages(rewards), _numpy_rloo(rewards), rtol=1e-5,
                             atol=1e-6)
  assert np.all(np.asarray(grpo.group_advantages(rewards))[1] == 0)


# -- sequence log-probs against transformers ----------------------------------------------------


def _pair_batch(fmt, n):
  """A DPO batch of n pairs from the shipped reward data: ragged contexts and responses."""
  rs = load_reward_split(split_dir(REWARD_DIR, "train"))
  data = RewardData(rs, fmt, n)
  pairs = dpo.preference_pairs(rs.ratings, range(n), "exclude", "none").take(np.arange(n))
  return data, pairs, dpo.PairBatcher(data, n).make_batch(pairs, None)


@pytest.mark.parametrize("kind", ["godel", "dialogpt", "blenderbot"])
def test_pair_logps_equal_transformers_row_by_row(kind, tmp_path):
  import torch

  torch_model, fmt = hf.save_torch_model(kind, str(tmp_path / "policy"))
  loaded = load_model(str(tmp_path / "policy"))
  data, pairs, batch = _pair_batch(fmt, 6)
  chosen, rejected = jax.jit(functools.partial(dpo.pair_logps, loaded.model, mean=False))(
      loaded.params, batch)
  t = lambda x: torch.tensor([x], dtype=torch.long)
  for i, (c, a, b) in enumerate(zip(pairs.context, pairs.chosen, pairs.rejected)):
    ctx = data.contexts[c]
    for got, resp in ((chosen[i], data.responses[c][a]), (rejected[i], data.responses[c][b])):
      with torch.no_grad():  # one row alone: no padding anywhere
        if loaded.model.is_encoder_decoder:
          logits = torch_model(input_ids=t(ctx), decoder_input_ids=t(resp[:-1])).logits[0]
          want = torch.log_softmax(logits.double(), -1)[range(len(resp) - 1), resp[1:]].sum()
        else:
          logits = torch_model(input_ids=t(ctx + resp)).logits[0]
          pos = range(len(ctx) - 1, len(ctx) + len(resp) - 1)
          want = torch.log_softmax(logits.double(), -1)[pos, resp].sum()
      np.testing.assert_allclose(float(got), float(want), rtol=1e-4)


# -- learning ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["godel", "dialogpt", "blenderbot"])
def test_dpo_learns_a_preference_on_held_out_contexts(kind, tmp_path):
  hf.save_torch_model(kind, str(tmp_path / "policy"))
  data = synthetic_preference(str(tmp_path / "data"), n_contexts=40)
  cfg = dpo.DPOConfig(dataset_dir=data, output_dir=str(tmp_path / "out"),
                      pretrained_model_dir=str(tmp_path / "policy"), max_epochs=3,
                      batch_size=8, initial_lr=2e-3, beta=0.1, val_fraction=0.25,
                      ties="zero_margin", pair_weight="sqrt_factor", log_interval=5)
  history = dpo.train_dpo(cfg)["history"]
  # Held-out contexts (a quarter, by seed): the policy now prefers the marked responses.
  assert history[-1]["val_rewards/accuracies"] >= 0.8, history
  assert history[-1]["val_rewards/margins"] > 0
  assert history[-1]["val_loss"] < np.log(2)  # below the untrained policy's loss (h = 0)


@pytest.mark.parametrize("advantage,kind", [("grpo", "dialogpt"), ("rloo", "dialogpt"),
                                            ("grpo", "blenderbot")])
def test_grpo_and_rloo_raise_a_learnable_score_with_bounded_kl(advantage, kind, tmp_path):
  """A 2-layer GPT-2 (DialoGPT's format; and a 2-layer BlenderBot) on real contexts. The score of a response is the share
  of its tokens (x10) in a set the model can learn to prefer: the 15% of the vocabulary whose (tied)
  embeddings lie furthest along one random direction, a linear feature (15% at the start).
  Eight contexts, G = 4, two updates per generation, beta 0.04: within 30 generations the mean
  share rises by 0.1, while the KL to the reference (k3, a token) stays below 3 (BlenderBot at
  half the learning rate: at 2e-2 its KL reached 4.8)."""
  hf.save_torch_model(kind, str(tmp_path / "policy"))
  policy = load_model(str(tmp_path / "policy"))
  vocab = policy.fmt.vocab_size
  embeddings = next(np.asarray(x) for x in jax.tree.leaves(policy.params)
                    if x.ndim == 2 and x.shape[0] == vocab)
  along = embeddings @ np.random.default_rng(0).normal(size=embeddings.shape[1])
  liked = jnp.asarray(along > np.quantile(along, 0.85))
  cfg = grpo.GRPOConfig(dataset_dir=ED_DIR, output_dir=str(tmp_path), reward_model_dir="x",
                        pretrained_model_dir="x", advantage=advantage, group_size=4,
                        batch_size=8, max_new_tokens=8, beta=0.04, num_iterations=2,
                        initial_lr=2e-2 if kind == "dialogpt" else 1e-2)
  gen = _sampling(policy, cfg)
  tx, _ = make_optimizer(OptimizerConfig(initial_lr=cfg.initial_lr, schedule="step"), 100, 1)
  params = {"policy": policy.params}
  state = TrainState(jnp.int32(0), params, tx.init(params), jax.random.PRNGKey(0))
  ref = jax.tree.map(jnp.array, policy.params)
  sample = jax.jit(functools.partial(grpo.sample_groups, model=policy.model, gen=gen, g=4))
  update = jax.jit(functools.partial(grpo.update, model=policy.model, tx=tx, cfg=cfg))
  batch = hf.real_batch(policy.fmt, load_dialogue_split(os.path.join(ED_DIR, "train"), 0.0), 8)
  scores_seen, kls = [], []
  for it in range(30):
    g = sample(state.params, ref, batch.context_ids_BxC, batch.context_mask_BxC, jnp.arange(8),
               jax.random.PRNGKey(it))
    mask = g.response_mask
    # x10: RLOO's advantages are in the score's units (GRPO's are scale-free)
    score = 10.0 * jnp.sum(liked[g.response_ids] * mask, 1) / jnp.maximum(mask.sum(1), 1)
    state, metrics = update(state, g, score.astype(jnp.float32), jnp.ones(8))
    scores_seen.append(float(metrics["reward"]))
    kls.append(float(metrics["kl"]))
  assert np.mean(scores_seen[-5:]) > np.mean(scores_seen[:5]) + 1.0, scores_seen
  assert max(kls) < 3.0, kls


def _sampling(policy, cfg):
  """The trainer's sampling settings (GRPOTask's)."""
  base = resolve({}, {}, policy.model.cfg)
  return dataclasses.replace(base, max_new_tokens=cfg.max_new_tokens, sample=True,
                             temperature=1.0, top_k=0, top_p=1.0, beam_width=1, min_length=0,
                             no_repeat_ngram_size=0, encoder_no_repeat_ngram_size=0,
                             forced_eos_token_id=None)


# -- the launchers -------------------------------------------------------------------------------

DPO_FLAGS = dict(max_contexts=12, batch_size=8, val_fraction=0.25, max_epochs=2,
                 initial_lr=1e-3, checkpoint_interval=1, log_interval=1)
GRPO_FLAGS = dict(max_train_examples=16, max_val_examples=8, batch_size=8, group_size=2,
                  max_new_tokens=4, max_epochs=2, initial_lr=1e-3, num_iterations=2,
                  checkpoint_interval=1, log_interval=1)


@pytest.fixture(scope="module")
def small_policy(tmp_path_factory):
  """A 2-layer GPT-2 in DialoGPT's format and a reward model on it (scored in the graph)."""
  root = tmp_path_factory.mktemp("preference_models")
  policy = str(root / "policy")
  hf.save_torch_model("dialogpt", policy)
  rm = str(root / "rm")
  reward_model.save(reward_model.new_reward_model(load_model(policy), seed=3), rm)
  return policy, rm


def _command(launcher, settings, out_dir, *extra):
  flags = [f"--{k}={v}" for k, v in settings.items()]
  return [sys.executable, os.path.join(REPO, "launch", launcher), *flags, *extra,
          "--output_dir", str(out_dir)]



def _same_params(a, b, exact=True, atol=0.0):
  for x, y in zip(jax.tree.leaves(load_model(str(a)).params),
                  jax.tree.leaves(load_model(str(b)).params)):
    if exact:
      np.testing.assert_array_equal(x, y)
    else:
      np.testing.assert_allclose(x, y, atol=atol)


def _check_launcher(command, run_from, in_process, tmp_path, monitor):
  """One-device launcher run; the same run SIGKILLed at an unplanned moment and rerun (bit for
  bit the same); the run in-process on 8 devices (the same numbers); best/ a plain model."""
  whole = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True, cwd=REPO,
                         env=one_device_env(), timeout=600)
  assert whole.returncode == 0, whole.stderr[-3000:]
  whole_run = tmp_path / "whole" / "tensorboard_logs" / "version_0"
  killed = tmp_path / "killed"
  kill_after_first_checkpoint(command(killed), killed / "tensorboard_logs" / "version_0",
                              cwd=REPO, env=one_device_env())
  rerun = subprocess.run(command(killed), capture_output=True, text=True, cwd=REPO,
                         env=one_device_env(), timeout=600)
  assert rerun.returncode == 0 and "resuming" in rerun.stderr, rerun.stderr[-3000:]
  killed_run = killed / "tensorboard_logs" / "version_0"
  history = lambda run: json.load(open(run / "FINISHED"))["history"]
  assert history(whole_run) == history(killed_run)
  for folder in ("latest", "best"):
    _same_params(whole_run / folder, killed_run / folder)

  assert jax.device_count() == 8
  summary = in_process(str(tmp_path / "eight"))
  np.testing.assert_allclose([r[monitor] for r in summary["history"]],
                             [r[monitor] for r in history(whole_run)], rtol=1e-4, atol=1e-5)
  start = jax.tree.leaves(load_model(run_from).params)
  latest = jax.tree.leaves(load_model(str(whole_run / "latest")).params)
  moved = max(float(np.abs(a - b).max()) for a, b in zip(start, latest))
  assert moved > 1e-5
  # Within 1% of the largest move: Adam divides by sqrt(v), so on embedding rows with tiny
  # gradients the 8 shards' other summation order shows at ~0.5% of a step.
  _same_params(whole_run / "latest", os.path.join(summary["run_dir"], "latest"), exact=False,
               atol=moved * 1e-2)
  info = json.load(open(whole_run / "best" / model_dir.INFO))
  assert info["family"] == "dialogpt" and not info["extra"]  # a dialogue model test.py loads
  return read_scalars(str(whole_run))


def test_dpo_launcher_resumes_after_sigkill_and_matches_8_devices(small_policy, tmp_path):
  policy, _ = small_policy
  source = ["--dataset_dir", REWARD_DIR, "--pretrained_model_dir", policy]
  scalars = _check_launcher(
      lambda out: _command("train_dpo.py", DPO_FLAGS, out, *source), policy,
      lambda out: dpo.train_dpo(dpo.DPOConfig(dataset_dir=REWARD_DIR, output_dir=out,
                                              pretrained_model_dir=policy, **DPO_FLAGS)),
      tmp_path, "val_loss")
  for key in ("rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
              "logps/chosen", "logps/rejected"):
    assert np.isfinite([v for _, v in scalars[f"train_{key}"]]).all(), key


def test_grpo_launcher_resumes_after_sigkill_and_matches_8_devices(small_policy,
                                                                   short_dialogues, tmp_path):
  policy, rm = small_policy
  source = ["--dataset_dir", short_dialogues, "--pretrained_model_dir", policy,
            "--reward_model_dir", rm, "--advantage", "rloo"]
  scalars = _check_launcher(
      lambda out: _command("train_grpo.py", GRPO_FLAGS, out, *source), policy,
      lambda out: grpo.train_grpo(grpo.GRPOConfig(
          dataset_dir=short_dialogues, output_dir=out, pretrained_model_dir=policy,
          reward_model_dir=rm, advantage="rloo", **GRPO_FLAGS)),
      tmp_path, "val_reward")
  for key in ("reward", "reward_std", "kl", "clip_ratio", "completions/mean_length"):
    assert np.isfinite([v for _, v in scalars[f"train_{key}"]]).all(), key


# -- how far a policy moved ---------------------------------------------------------------------


def test_sampled_kl_is_zero_for_the_same_policy_and_grows_with_a_perturbation(tmp_path):
  from empathy_jax.evaluation.policy_kl import sampled_kl

  hf.save_torch_model("dialogpt", str(tmp_path / "policy"))
  start = load_model(str(tmp_path / "policy"))
  split = load_dialogue_split(os.path.join(ED_DIR, "test"), 1.0).select(range(32))
  assert sampled_kl(start, start, split, max_new_tokens=6, batch_size=16)["kl"] == 0.0
  # Perturbations large enough that the KL, not the estimate's sampling noise, dominates.
  kls = []
  for scale in (0.1, 0.3):
    noise = jax.tree.map(lambda x, k=scale: x + k * np.random.default_rng(1).normal(
        size=x.shape).astype(x.dtype), start.params)
    moved = dataclasses.replace(start, params=noise)
    result = sampled_kl(moved, start, split, max_new_tokens=6, batch_size=16)
    assert result["rows"] == 32 and result["kl"] > 3 * result["kl_sem"], result
    kls.append(result["kl"])
  assert 0.0 < kls[0] < kls[1], kls
