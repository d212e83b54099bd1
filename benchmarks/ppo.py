"""One PPO iteration (rollout, scoring, update), episodes per second: our three jitted programs
(`training.ppo.trainer.Programs`, as `train_rlhf_pipeline` runs them) against a PyTorch
implementation on transformers, as a TRL-style user writes it: `generate` (sampling at the
same temperature, top-k/top-p off), no-grad forwards for the old, reference and value
estimates and the reward model's score, per-token KL rewards, GAE as TRL's reverse Python loop,
whitening, then `ppo_epochs` x `num_minibatches` clipped policy/value/entropy updates with one
AdamW over policy and critic. Same weights (policy, frozen reference, critic from the reward
model's backbone with a zero value head, reward model), same contexts (PyTorch's padded to
their longest), exactly `max_new_tokens` sampled tokens per row on both sides (EOS off).

Sampled tokens cannot match across frameworks, so the same-work check feeds our rollout's
tokens to the PyTorch side: its old/reference log-probs, values, scores, advantages and
returns, and the first minibatch's loss computed from them, must equal ours before anything is
timed. `tests/test_benchmark.py` trains both sides on the same rollouts for two iterations
and compares the policies' parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import sharding
from benchmarks import common as C
from benchmarks.common import (BenchConfig, describe, interleaved, pin_threads, report,
                               spread, to_torch, torch_available, torch_device, torch_sync,
                               torch_twin, trim_padding)
from empathy_jax.data.dialogue_dataset import load_dialogue_split
from empathy_jax.data.pipeline import make_batcher, tokenize_split
from empathy_jax.generation.config import resolve
from empathy_jax.models import reward_model
from empathy_jax.models.loading import load_model
from empathy_jax.training.optimizer import make_optimizer
from empathy_jax.training.ppo import step as S
from empathy_jax.training.ppo import trainer as T

PHASES = ("rollout", "scoring", "update")
KL_COEF = 0.05


def policy_and_reward(cfg: BenchConfig):
  """(the policy, a new reward model on a copy of it, the run config's model source: a model
  folder or a registry name) of an RL mode."""
  path = C.model_path(cfg)
  policy = load_model(path)
  reward = reward_model.new_reward_model(load_model(path), seed=0)
  source = {"pretrained_model_dir": path} if os.path.isdir(path) else {"model": path}
  return policy, reward, source


def _setup(cfg: BenchConfig):
  policy, reward, source = policy_and_reward(cfg)
  run = T.PPORunConfig(dataset_dir=cfg.dataset_dir, output_dir="(benchmark)",
                       reward_model_dir="(a new reward model)", **source,
                       batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens,
                       kl_penalty=KL_COEF, initial_lr=1e-5)
  ppo = run.ppo(resolve({}, {}, policy.model.cfg))
  # Exactly max_new_tokens per row on both sides: EOS off.
  ppo = dataclasses.replace(ppo, generation=dataclasses.replace(ppo.generation,
                                                                 eos_token_id=None))
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "train"), 0.3)
  table = tokenize_split(split.select(range(min(len(split), 64 * cfg.batch_size))), policy.fmt)
  batch = next(make_batcher(policy.fmt, cfg.batch_size).batches(table, seed=0))
  return policy, reward, run, ppo, split, batch


def _our_side(policy, reward, run, ppo, split, batch):
  mesh = sharding.make_mesh(sharding.MeshConfig())
  tx, lr_schedule = make_optimizer(run.optimizer(), 1000, 1)
  state, shardings = T.initial_state(run, policy, reward, tx, mesh)
  programs = T.Programs(run, ppo, policy, reward, mesh, shardings, tx)
  assert programs.in_graph
  data = sharding.batch_sharding(mesh, 2)
  rows = np.maximum(batch.example_index_B, 0)
  ctx, cmask = sharding.from_host([batch.context_ids_BxC, batch.context_mask_BxC], data)
  inputs = {"ctx": ctx, "cmask": cmask, "rows": sharding.replicate(rows, mesh),
            "plan": T.context_plan(policy.model, batch.context_mask_BxC, mesh, ppo),
            "rm_ctx": ctx, "rm_cmask": cmask,
            "contexts": [split.contexts[i] for i in rows]}
  holder = {"state": state, "splits": []}

  def iteration():
    holder["state"], metrics = programs.iteration(holder["state"], inputs, timed=True)
    holder["splits"].append([metrics[f"time/{p}"] for p in PHASES])

  return programs, inputs, holder, iteration, lr_schedule


def torch_policy_pieces(policy, reward, ctx, cmask, g, rm_head, rm=None):
  """The PyTorch side's teacher-forced pieces over contexts `ctx`, `cmask` (tensors, padded to
  their longest) and `g.max_new_tokens`-token responses: `lm_inputs(resp, rows)`,
  `logprobs(net, resp, rows)` -> (log-probs, entropy) at `g.temperature` (decoder-only
  models project only the response's positions onto the vocabulary), and `scores(resp)`,
  the reward model's (its backbone `rm`, default a twin of `reward.backbone`, and `rm_head`)
  with the original's pooling, as `trainer.reward_in_graph` scores them."""
  import torch  # pylint: disable=import-outside-toplevel

  dev = torch_device()
  enc_dec = policy.model.is_encoder_decoder
  rm = rm if rm is not None else torch_twin(reward.backbone, lm_head=False).requires_grad_(False)
  c = ctx.shape[1]
  prefix = T.response_prefix(reward.backbone.fmt)
  pad, eos = reward.backbone.fmt.pad_id, reward.backbone.fmt.eos_id
  n = g.max_new_tokens
  every = slice(None)

  def lm_inputs(resp, rows=every):
    """Teacher-forced inputs of `resp`, the responses to contexts `rows`, and the slice of
    positions that predict its tokens."""
    if enc_dec:
      start = torch.full((resp.shape[0], 1), g.decoder_start_token_id, dtype=torch.long,
                         device=dev)
      dec = torch.cat([start, resp], 1)
      return (dict(input_ids=ctx[rows], attention_mask=cmask[rows], decoder_input_ids=dec),
              slice(0, n))
    full_mask = torch.cat([cmask[rows], torch.ones_like(resp)], 1)
    pos = (full_mask.cumsum(-1) - 1).masked_fill(full_mask == 0, 1)
    return (dict(input_ids=torch.cat([ctx[rows], resp], 1), attention_mask=full_mask,
                 position_ids=pos), slice(c - 1, c - 1 + n))

  def logprobs(net, resp, rows=every):
    inputs, span = lm_inputs(resp, rows)
    if enc_dec:  # every decoder position predicts a response token
      logits = net(**inputs).logits[:, span]
    else:  # only the response's positions onto the vocabulary, as ours
      logits = net.lm_head(net.transformer(**inputs).last_hidden_state[:, span])
    logits = logits.float() / g.temperature
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, resp[..., None])[..., 0]
    return logp, -(logp_all.exp() * logp_all).sum(-1)

  def scores(resp):
    # EOS is off, so every one of the n sampled tokens is real, even one equal to the pad id
    # (a policy can sample it). A response without EOS was cut off at max_new_tokens and gets
    # EOS after it, as re-encoding its text would.
    cut = ~(resp == eos).any(1)
    resp = torch.cat([resp, torch.full((resp.shape[0], 1), pad, dtype=resp.dtype, device=dev)],
                     1)
    resp[cut, n] = eos
    ids = torch.cat([torch.tensor([prefix] * resp.shape[0], dtype=torch.long, device=dev).reshape(
        resp.shape[0], len(prefix)), resp], 1)
    if enc_dec:
      h = rm(input_ids=ctx, attention_mask=cmask, decoder_input_ids=ids).last_hidden_state
    else:
      full_mask = torch.cat([cmask, torch.ones_like(ids)], 1)
      pos = (full_mask.cumsum(-1) - 1).masked_fill(full_mask == 0, 1)
      h = rm(input_ids=torch.cat([ctx, ids], 1), attention_mask=full_mask,
             position_ids=pos).last_hidden_state[:, c:]
    # The original's pooling: every real position, the format's start token included.
    pool = torch.cat([torch.ones(resp.shape[0], len(prefix) + n, device=dev),
                      cut.float()[:, None]], 1)
    mean = (h * pool[..., None]).sum(1) / pool.sum(1, keepdim=True)
    return rm_head(mean)[:, 0] - float(reward.mean_offset)

  return types.SimpleNamespace(lm_inputs=lm_inputs, logprobs=logprobs, scores=scores)


def torch_reward_head(reward):
  """The reward model's scalar head as a torch Linear on the PyTorch side's device."""
  import torch  # pylint: disable=import-outside-toplevel

  hidden = reward.backbone.model.hidden_size
  head = torch.nn.Linear(hidden, 1, device=torch_device())
  with torch.no_grad():
    head.weight.copy_(to_torch(reward.head["kernel"], torch.float32)[None])
    head.bias.copy_(to_torch(reward.head["bias"], torch.float32).reshape(1))
  return head.requires_grad_(False)


def _torch_side(policy, reward, ppo, batch, tx_lr: float, weight_decay: float, lr_schedule):
  """The PyTorch side over the same weights: `iteration()` (timed into `clock`), `check(resp)`
  (its teacher-forced pieces, scores and first loss on given response tokens), `learn(resp)`
  (an iteration's scoring and updates on given response tokens) and its `policy`. AdamW steps
  at `lr_schedule(step)`, ours."""
  import torch  # pylint: disable=import-outside-toplevel

  enc_dec = policy.model.is_encoder_decoder
  dev = torch_device()
  g = ppo.generation
  model = torch_twin(policy)
  model.generation_config.eos_token_id = None  # no stop, as on our side
  ref = torch_twin(policy).requires_grad_(False)
  critic = torch_twin(reward.backbone, lm_head=False)
  v_head = torch.nn.Linear(reward.backbone.model.hidden_size, 1, device=dev)
  torch.nn.init.zeros_(v_head.weight)
  torch.nn.init.zeros_(v_head.bias)
  params = [*model.parameters(), *critic.parameters(), *v_head.parameters()]
  opt = torch.optim.AdamW(params, lr=tx_lr, weight_decay=weight_decay)
  sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: float(lr_schedule(k)) / tx_lr)
  ctx_np, cmask_np = trim_padding(batch.context_ids_BxC, batch.context_mask_BxC, not enc_dec)
  ctx, cmask = to_torch(ctx_np), to_torch(cmask_np)
  tp = torch_policy_pieces(policy, reward, ctx, cmask, g, torch_reward_head(reward))
  n = g.max_new_tokens
  every = slice(None)
  logprobs, scores = tp.logprobs, tp.scores

  def values(resp, rows=every):
    inputs, span = tp.lm_inputs(resp, rows)
    return v_head(critic(**inputs).last_hidden_state[:, span])[..., 0]

  def pieces(resp):
    with torch.no_grad():
      old, _ = logprobs(model, resp)
      return old, logprobs(ref, resp)[0], values(resp)

  def whiten(x, shift_mean=True):
    mean, var = x.mean(), x.var(unbiased=False)
    w = (x - mean) * torch.rsqrt(var + 1e-8)
    return w if shift_mean else w + mean

  def advantages(old, ref_logp, vals, score):
    kl = old - ref_logp
    rewards = -KL_COEF * kl
    rewards[:, -1] += score
    last, adv = 0.0, []
    for t in reversed(range(n)):  # TRL's loop
      next_v = vals[:, t + 1] if t + 1 < n else 0.0
      delta = rewards[:, t] + ppo.gamma * next_v - vals[:, t]
      last = delta + ppo.gamma * ppo.lam * last
      adv.append(last)
    adv = torch.stack(adv[::-1], 1)
    return whiten(adv), adv + vals

  def loss(resp, old, vals, adv, ret, rows=every):
    logp, entropy = logprobs(model, resp, rows)
    ratio = torch.exp(logp - old)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - ppo.clip_epsilon,
                                                     1 + ppo.clip_epsilon)).mean()
    v = values(resp, rows)
    v_clip = vals + (v - vals).clamp(-ppo.value_clip, ppo.value_clip)
    vl = 0.5 * torch.max((v - ret) ** 2, (v_clip - ret) ** 2).mean()
    return pg + ppo.vf_coeff * vl - ppo.entropy_coeff * entropy.mean()

  def update(resp, old, vals, adv, ret):
    b = resp.shape[0]
    size = b // ppo.num_minibatches
    for _ in range(ppo.ppo_epochs):
      order = torch.randperm(b, device=dev)
      for i in range(ppo.num_minibatches):
        mb = order[i * size:(i + 1) * size]
        opt.zero_grad()
        loss(resp[mb], old[mb], vals[mb], adv[mb], ret[mb], mb).backward()  # mb's contexts
        opt.step()
        sched.step()

  def learn(resp):
    """Pieces, scores, advantages and the updates of an iteration whose rollout is `resp`."""
    old, ref_logp, vals = pieces(resp)
    with torch.no_grad():
      adv, ret = advantages(old, ref_logp, vals, scores(resp))
    update(resp, old, vals, adv, ret)

  clock = []

  def iteration():
    import time  # pylint: disable=import-outside-toplevel

    t0 = time.perf_counter()
    with torch.no_grad():
      seq = model.generate(input_ids=ctx, attention_mask=cmask, do_sample=True, top_k=0,
                           top_p=1.0, temperature=g.temperature, max_new_tokens=n,
                           min_new_tokens=0, pad_token_id=g.pad_token_id)
    resp = seq[:, 1:] if enc_dec else seq[:, ctx.shape[1]:]
    old, ref_logp, vals = pieces(resp)
    torch_sync()  # a GPU's queued work belongs to the phase that queued it
    t1 = time.perf_counter()
    with torch.no_grad():
      score = scores(resp)
    torch_sync()
    t2 = time.perf_counter()
    with torch.no_grad():
      adv, ret = advantages(old, ref_logp, vals, score)
    update(resp, old, vals, adv, ret)
    torch_sync()
    clock.append([t1 - t0, t2 - t1, time.perf_counter() - t2])

  def check(resp_np):
    """Teacher-forced pieces, score and the first full-batch loss on our response tokens."""
    resp = to_torch(resp_np)
    old, ref_logp, vals = pieces(resp)
    with torch.no_grad():
      score = scores(resp)
      adv, ret = advantages(old, ref_logp, vals, score)
      first = loss(resp, old, vals, adv, ret)
    return {k: v.cpu().numpy() for k, v in dict(old=old, ref=ref_logp, values=vals, scores=score,
                                          advantages=adv, returns=ret, loss=first).items()}

  return types.SimpleNamespace(
      iteration=iteration, check=check, clock=clock, policy=model,
      learn=lambda resp_np: learn(to_torch(resp_np)))


def _same_work(programs, inputs, holder, check):
  """Our rollout's pieces against PyTorch's on the same tokens; the first update's loss."""
  state = holder["state"]
  r = programs.sample(state, programs.ref_params, inputs["ctx"], inputs["cmask"],
                      inputs["rows"], inputs["plan"])
  ours_scores = programs.score(programs.rm_params, r, inputs["rm_ctx"], inputs["rm_cmask"])
  assert int(np.asarray(r.response_mask).min()) == 1, "EOS must be off: every row full length"
  theirs = check(np.asarray(r.response_ids))
  for name, ours in (("old", r.old_logprobs), ("ref", r.ref_logprobs), ("values", r.values),
                     ("scores", ours_scores)):
    np.testing.assert_allclose(np.asarray(ours), theirs[name], rtol=2e-4, atol=2e-4,
                               err_msg=f"{name}: our rollout differs from PyTorch's")
  # The first update minibatch's loss (the whole rollout when num_minibatches is 1): under
  # the rollout's own parameters, from the finished rollout.
  finished = S.finish(r, ours_scores, jnp.float32(KL_COEF), cfg=programs.ppo)
  # At ratio 1 the policy term of the loss is -mean(whitened advantages) = 0 whatever they
  # are: the advantages themselves are compared.
  for name, ours in (("advantages", finished.advantages), ("returns", finished.returns)):
    np.testing.assert_allclose(np.asarray(ours), theirs[name], rtol=2e-4, atol=2e-4,
                               err_msg=f"{name}: our rollout differs from PyTorch's")
  loss, _ = S.minibatch_loss(state.params, finished, programs.policy.model, programs.ppo,
                             inputs["plan"])
  np.testing.assert_allclose(float(loss), float(theirs["loss"]), rtol=1e-3, atol=1e-4,
                             err_msg="the first minibatch's loss differs from PyTorch's")
  return theirs


def _update_flops(programs, inputs, holder) -> float:
  """XLA's FLOP count of one iteration's update program. Its cost analysis counts a loop body
  once, so the program is compiled with one PPO epoch of one minibatch (the whole batch: the
  work of one epoch of `num_minibatches` smaller ones) and the count scaled by `ppo_epochs`
  (the rewards and advantages before the loop, a small part, are counted that many times
  too)."""
  ppo = programs.ppo
  once = dataclasses.replace(ppo, ppo_epochs=1, num_minibatches=1)
  state = holder["state"]
  r = jax.eval_shape(programs.sample, state, programs.ref_params, inputs["ctx"],
                     inputs["cmask"], inputs["rows"], inputs["plan"])
  scores = jax.eval_shape(programs.score, programs.rm_params, r, inputs["rm_ctx"],
                          inputs["rm_cmask"])
  update = jax.jit(functools.partial(T.finish_and_update, model=programs.policy.model,
                                     tx=programs.tx, ppo=once, mesh=programs.mesh))
  return C.xla_flops(update.lower(state, r, scores, inputs["plan"]).compile()) * ppo.ppo_epochs


def run(cfg: BenchConfig, strict: bool = True) -> dict:
  """`strict=False`: a same-work check that fails is reported in the JSON line
  (`same_work`) and the timing goes on."""
  pin_threads()
  policy, reward, run_cfg, ppo, split, batch = _setup(cfg)
  programs, inputs, holder, ours, lr_schedule = _our_side(policy, reward, run_cfg, ppo, split,
                                                          batch)
  sides, same_work = {"jax": ours}, None
  if cfg.torch and torch_available():
    side = _torch_side(policy, reward, ppo, batch, run_cfg.initial_lr, run_cfg.weight_decay,
                       lr_schedule)  # the same schedule, stepped per AdamW step
    torch_iteration, torch_clock = side.iteration, side.clock
    try:
      _same_work(programs, inputs, holder, side.check)
      same_work = "equal"
    except AssertionError as e:
      if strict:
        raise
      same_work = " ".join(str(e).split())[:300]
    print(f"same work: PyTorch's old/reference log-probs, values, reward scores, advantages, "
          f"returns (rtol 2e-4) and first-minibatch loss (rtol 1e-3) on our rollout's tokens: "
          f"{same_work}")
    sides["torch"] = torch_iteration
  shape = C.lm_head_shape(policy.model, cfg.batch_size * cfg.max_new_tokens)
  times = interleaved({**sides, **C.matmul_probes(shape)}, cfg.repeats)
  probe_times = {name: times.pop(name) for name in C.PROBES}
  real = int(batch.context_mask_BxC.sum())
  print(f"one PPO iteration: {cfg.batch_size} episodes, contexts {real} real tokens in "
        f"{batch.context_mask_BxC.size} bucket positions, {cfg.max_new_tokens} sampled tokens "
        f"each (EOS off), {ppo.ppo_epochs} PPO epochs x {ppo.num_minibatches} minibatch(es); "
        f"repeats: {cfg.repeats}")
  splits = {"jax": holder["splits"][1:]}
  if "torch" in sides:
    splits["torch"] = torch_clock[1:]
  result, split_out = {}, {}
  for side, seconds in times.items():
    median = spread(seconds)["median"]
    parts = np.median(np.asarray(splits[side]), axis=0)
    split_out[side] = {p: round(float(v), 4) for p, v in zip(PHASES, parts)}
    print(f"{side:>5}: {describe(seconds)}, {cfg.batch_size / median:.2f} episodes/s; median "
          f"split " + ", ".join(f"{p} {v:.3f} s" for p, v in zip(PHASES, parts)))
    result[side] = cfg.batch_size / median
  # Where the update stands against this machine's matmul rate: how much faster it could get.
  flops = _update_flops(programs, inputs, holder)
  ours_update = split_out["jax"]["update"]
  roofline = C.roofline({**probe_times, "jax": times["jax"]}, flops, shape, ours_update)
  peak = roofline["matmul_1024_gflops"] * 1e9
  floor = flops / peak
  print(f"the update at XLA's 1024^3 matmul rate would take {floor:.2f} s")
  roofline.update({"update_gflop": roofline["gflop"],
                   "update_fraction_of_matmul_rate": roofline["fraction_of_matmul_1024"]})
  if "torch" in sides:
    torch_median = spread(times["torch"])["median"]
    best = sum(split_out["jax"][p] for p in PHASES if p != "update") + floor
    print(f"with the update at the matmul rate and the rest as measured, an iteration would take "
          f"{best:.2f} s: at most {torch_median / best:.2f}x PyTorch's")
    roofline["ratio_bound_update_at_matmul_rate"] = round(torch_median / best, 3)
  return report(cfg, "episodes/s", result["jax"], result.get("torch"),
                {"repeats": cfg.repeats, "max_new_tokens": cfg.max_new_tokens,
                 "ppo_epochs": ppo.ppo_epochs, "split_seconds": split_out,
                 "same_work": same_work, **roofline})
