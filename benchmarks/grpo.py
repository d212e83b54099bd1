"""One GRPO step (episodes = contexts x group_size per second): our three jitted programs
(`training.grpo`: `sample_groups`, the reward model in the graph, `update`, as `GRPOTask` runs
them) against a PyTorch implementation on transformers as a TRL user writes it: the contexts
repeated `group_size` times, `generate` sampling at the same temperature (top-k/top-p off), a
no-grad forward of the reference for its log-probs and of the reward model for the scores,
group-relative advantages ((r - mean) / (std + 1e-4), Bessel's std), then one clipped update
(ratio against the detached current log-probs, TRL's num_iterations = 1) with the k3 KL in the
loss, per-token losses averaged per response and over responses, AdamW. Same weights (policy,
frozen reference, reward model), same contexts (PyTorch's padded to their longest), exactly
`max_new_tokens` sampled tokens per row on both sides (EOS off).

Sampled tokens cannot match across frameworks, so the same-work check feeds our generation's
tokens to the PyTorch side: its reference log-probs, scores, advantages and loss on them must
equal ours before anything is timed.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import numpy as np

from benchmarks import common as C
from benchmarks import generation as G
from benchmarks.common import (BenchConfig, interleaved, pin_threads, rates, report, to_torch,
                               torch_available, torch_sync, torch_twin, trim_padding)
from benchmarks.ppo import policy_and_reward, torch_policy_pieces, torch_reward_head
from empathy_jax import sharding
from empathy_jax.data.dialogue_dataset import load_dialogue_split
from empathy_jax.data.pipeline import make_batcher, tokenize_split
from empathy_jax.generation.config import resolve
from empathy_jax.models import reward_model
from empathy_jax.training import core, grpo
from empathy_jax.training.ppo import rollout as R
from empathy_jax.training.ppo.trainer import score_program

GROUP = 4
BETA = 0.04


def setup(cfg: BenchConfig, lr: float = 1e-5):
  policy, reward, source = policy_and_reward(cfg)
  run = grpo.GRPOConfig(dataset_dir=cfg.dataset_dir, output_dir="(benchmark)",
                        reward_model_dir="(a new reward model)", **source,
                        batch_size=cfg.batch_size, group_size=GROUP, beta=BETA,
                        max_new_tokens=cfg.max_new_tokens, initial_lr=lr)
  gen = dataclasses.replace(resolve({}, {}, policy.model.cfg), max_new_tokens=cfg.max_new_tokens,
                            sample=True, temperature=run.temperature, top_k=0, top_p=1.0,
                            beam_width=1, min_length=0, no_repeat_ngram_size=0,
                            encoder_no_repeat_ngram_size=0, forced_eos_token_id=None,
                            eos_token_id=None)  # exactly max_new_tokens per row, both sides
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "train"), 0.3)
  table = tokenize_split(split.select(range(min(len(split), 64 * cfg.batch_size))), policy.fmt)
  batch = next(make_batcher(policy.fmt, cfg.batch_size).batches(table, seed=0))
  return policy, reward, run, gen, batch


def our_side(policy, reward, run, gen, batch, mesh):
  """(one step, `check_inputs()` -> a generation's tokens, reference log-probs, scores,
  advantages and loss at the current weights, `learn()`: one update on that generation,
  `logps()`: the policy's log-probs of its tokens now, `flops()`: XLA's count of one step)."""
  state, shardings, tx, _ = core.adamw_state(
      run, {"policy": policy.params}, {"policy": policy.model.abstract_params()}, 1000, mesh,
      run.seed)
  ref_params = sharding.shard_tree(jax.tree.map(np.asarray, policy.params),
                                   shardings.params["policy"])
  rm_params = reward_model.RewardScorer(reward, run.batch_size * GROUP, mesh).params
  model = policy.model
  sample, update = grpo.programs(model, tx, shardings, mesh, run, gen)
  score = score_program(reward, mesh, GROUP)
  data = sharding.batch_sharding(mesh, 2)
  ctx, cmask = sharding.from_host([batch.context_ids_BxC, batch.context_mask_BxC], data)
  rows = sharding.replicate(np.maximum(batch.example_index_B, 0), mesh)
  real = sharding.replicate(np.ones(batch.context_ids_BxC.shape[0], np.float32), mesh)
  holder = {"state": state, "last": None}

  def step():
    s = holder["state"]
    out = sample(s.params, ref_params, ctx, cmask, rows, jax.random.fold_in(s.rng, s.step))
    s, metrics = update(s, out, score(rm_params, out, ctx, cmask), real)
    holder["state"] = jax.block_until_ready((s, metrics))[0]

  def check_inputs():
    s = holder["state"]
    out = sample(s.params, ref_params, ctx, cmask, rows, jax.random.fold_in(s.rng, s.step))
    scores = score(rm_params, out, ctx, cmask)
    holder["last"] = (out, scores)
    adv = grpo.advantages(scores.reshape(-1, GROUP), run).reshape(-1)
    loss, _ = grpo.grpo_loss(s.params, out, adv, model=model, cfg=run)
    return {"response_ids": np.asarray(out.response_ids), "ref": np.asarray(out.ref_logprobs),
            "scores": np.asarray(scores), "advantages": np.asarray(adv), "loss": float(loss)}

  def learn():
    out, scores = holder["last"]
    holder["state"] = update(holder["state"], out, scores, real)[0]

  def logps():
    out = holder["last"][0]
    logp, _ = R.policy_outputs(model, holder["state"].params["policy"], out.context_ids,
                               out.context_mask, out.target_ids, out.target_mask,
                               gen.temperature)
    return np.asarray(logp)

  def flops():
    """The sampling program (its decoding loop's body counted once by XLA, so the other
    max_new_tokens - 1 steps are added, each as `generation.prefill_and_step_flops` counts it
    on the contexts repeated group_size times), the scoring and the update (its scan over
    num_iterations counted once, so times num_iterations)."""
    s = holder["state"]
    args = (s.params, ref_params, ctx, cmask, rows, s.rng)
    out = jax.eval_shape(sample, *args)
    scores = jax.eval_shape(score, rm_params, out, ctx, cmask)
    total = C.xla_flops(sample.lower(*args).compile())
    total += C.xla_flops(score.lower(rm_params, out, ctx, cmask).compile())
    total += C.xla_flops(update.lower(s, out, scores, real).compile()) * run.num_iterations
    _, one_step = G.prefill_and_step_flops(
        model, policy.params, np.repeat(batch.context_ids_BxC, GROUP, 0),
        np.repeat(batch.context_mask_BxC, GROUP, 0), gen)
    return total + (gen.max_new_tokens - 1) * one_step

  return step, check_inputs, learn, logps, flops


def torch_side(policy, reward, run, gen, batch):
  """(one TRL-style step, `check(response_ids)` -> its reference log-probs, scores, advantages
  and loss on given responses at the current weights, `learn(response_ids)`: one update on
  them, `logps(response_ids)`: the policy's log-probs of them now). AdamW at the run's
  learning rate, weight decay and gradient clipping."""
  import torch  # pylint: disable=import-outside-toplevel

  enc_dec = policy.model.is_encoder_decoder
  model = torch_twin(policy)
  model.generation_config.eos_token_id = None  # no stop, as on our side
  ref = torch_twin(policy).requires_grad_(False)
  opt = torch.optim.AdamW(model.parameters(), lr=run.initial_lr, weight_decay=run.weight_decay)
  ctx_np, cmask_np = trim_padding(batch.context_ids_BxC, batch.context_mask_BxC, not enc_dec)
  ctx = to_torch(ctx_np).repeat_interleave(GROUP, 0)
  cmask = to_torch(cmask_np).repeat_interleave(GROUP, 0)
  tp = torch_policy_pieces(policy, reward, ctx, cmask, gen, torch_reward_head(reward))

  def advantages(scores):
    grouped = scores.reshape(-1, GROUP)
    centred = grouped - grouped.mean(1, keepdim=True)
    return (centred / (grouped.std(1, keepdim=True) + 1e-4)).reshape(-1)

  def loss(resp, ref_logp, adv):
    logp, _ = tp.logprobs(model, resp)
    ratio = torch.exp(logp - logp.detach())
    clipped = ratio.clamp(1 - run.clip_epsilon, 1 + run.clip_epsilon)
    objective = torch.min(ratio * adv[:, None], clipped * adv[:, None])
    d = ref_logp - logp
    kl = torch.exp(d) - d - 1.0
    return (-(objective - BETA * kl)).mean(1).mean()  # every row is full length (EOS off)

  def pieces(resp):
    with torch.no_grad():
      ref_logp, _ = tp.logprobs(ref, resp)
      scores = tp.scores(resp)
      return ref_logp, scores, advantages(scores)

  def learn(resp):
    ref_logp, _, adv = pieces(resp)
    opt.zero_grad()
    loss(resp, ref_logp, adv).backward()
    if run.clip_norm:
      torch.nn.utils.clip_grad_norm_(model.parameters(), run.clip_norm)
    opt.step()

  def step():
    with torch.no_grad():
      seq = model.generate(input_ids=ctx, attention_mask=cmask, do_sample=True, top_k=0,
                           top_p=1.0, temperature=gen.temperature,
                           max_new_tokens=gen.max_new_tokens, min_new_tokens=0,
                           pad_token_id=gen.pad_token_id)
    learn(seq[:, 1:] if enc_dec else seq[:, ctx.shape[1]:])
    torch_sync()

  def check(response_ids):
    resp = to_torch(response_ids)
    ref_logp, scores, adv = pieces(resp)
    with torch.no_grad():
      value = loss(resp, ref_logp, adv)
    return {"ref": ref_logp.cpu().numpy(), "scores": scores.cpu().numpy(),
            "advantages": adv.cpu().numpy(), "loss": float(value)}

  def logps(response_ids):
    with torch.no_grad():
      return tp.logprobs(model, to_torch(response_ids))[0].cpu().numpy()

  return step, check, lambda response_ids: learn(to_torch(response_ids)), logps


def check_same(ours: dict, theirs: dict) -> None:
  """Raises unless both sides' pieces on our generation's tokens agree."""
  for name in ("ref", "scores", "advantages"):
    np.testing.assert_allclose(ours[name], theirs[name], rtol=2e-4, atol=2e-4,
                               err_msg=f"{name}: ours differ from PyTorch's")
  np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-3, atol=1e-4,
                             err_msg="the loss differs from PyTorch's")


def run(cfg: BenchConfig) -> dict:
  pin_threads()
  policy, reward, run_cfg, gen, batch = setup(cfg)
  mesh = sharding.make_mesh(sharding.MeshConfig())
  ours, our_check, _, _, our_flops = our_side(policy, reward, run_cfg, gen, batch, mesh)
  sides = {"jax": ours}
  if cfg.torch and torch_available():
    theirs, their_check, _, _ = torch_side(policy, reward, run_cfg, gen, batch)
    mine = our_check()
    check_same(mine, their_check(mine["response_ids"]))
    print("same work: PyTorch's reference log-probs, reward scores, advantages (rtol 2e-4) and "
          "loss (rtol 1e-3) on our generation's tokens equal ours")
    sides["torch"] = theirs
  # The largest matmul: the update's LM head over every sampled token.
  shape = C.lm_head_shape(policy.model, batch.context_ids_BxC.shape[0] * GROUP
                          * cfg.max_new_tokens)
  times = interleaved({**sides, **C.matmul_probes(shape)}, cfg.repeats)
  roof = C.roofline(times, our_flops(), shape)
  episodes = batch.context_ids_BxC.shape[0] * GROUP
  print(f"one GRPO step: {batch.context_ids_BxC.shape[0]} contexts x {GROUP} samples, "
        f"{cfg.max_new_tokens} sampled tokens each (EOS off), one update; repeats: "
        f"{cfg.repeats}")
  result = rates(times, episodes, "episodes/s")
  return report(cfg, "episodes/s", result["jax"], result.get("torch"),
                {"repeats": cfg.repeats, "group_size": GROUP,
                 "max_new_tokens": cfg.max_new_tokens, **roof})
