"""Reward-model training throughput (rated pairs per second): our jitted step (several contexts
per step, responses grouped on one encoder pass, the pair loss as arrays) against a competent
PyTorch step doing the same work (`_torch_batched_side`: our batches, the same number of AdamW
steps; the JSON line's `torch` and `ratio`), and against a PyTorch implementation of the
original's step (one context per step: its responses batched with the
context repeated, padded to their longest; the model's forward with hidden states; the mean
over response tokens; dropout and the linear head; a Python loop over the rated pairs; AdamW),
on the same weights, head and contexts. Before timing, both sides' eval-mode losses of every
context are asserted equal; the timed passes run in train mode on both sides."""

from __future__ import annotations

import os

import jax
import numpy as np

from empathy_jax import sharding
from benchmarks import common as C
from benchmarks.common import (BenchConfig, interleaved, jitted_pass, pin_threads, rates,
                               report, to_torch, torch_available, torch_sync, torch_twin,
                               trim_padding)
from benchmarks.ppo import torch_reward_head
from empathy_jax.data.dialogue_dataset import load_reward_split
from empathy_jax.models import reward_model
from empathy_jax.models.loading import load_model
from empathy_jax.training import reward_trainer
from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer
from empathy_jax.training.state import abstract_state, create_state, state_shardings

REWARD_DATA = "datasets/reward_dataset"


def _torch_side(reward, data: reward_trainer.RewardData, contexts):
  """(one pass of the original's train steps over `contexts`, its eval-mode loss per context)."""
  import torch  # pylint: disable=import-outside-toplevel

  loaded = reward.backbone
  model = torch_twin(loaded)
  linear = torch.nn.Linear(loaded.model.hidden_size, 1)
  with torch.no_grad():
    linear.weight.copy_(torch.from_numpy(np.asarray(reward.head["kernel"]))[None])
    linear.bias.copy_(torch.from_numpy(np.asarray(reward.head["bias"])).reshape(1))
  dropout = torch.nn.Dropout(0.6)
  opt = torch.optim.AdamW([*model.parameters(), *linear.parameters()], lr=1e-5)
  pad, fmt = loaded.fmt.pad_id, loaded.fmt
  t = lambda x: torch.tensor(x, dtype=torch.long)

  def inputs(i):
    """The context repeated for each response; responses padded to their longest."""
    responses = data.responses[i]
    longest = max(len(r) for r in responses)
    ids = t([r + [pad] * (longest - len(r)) for r in responses])
    mask = t([[1] * len(r) + [0] * (longest - len(r)) for r in responses])
    ctx = t([data.contexts[i]] * len(responses))
    return ctx, torch.ones_like(ctx), ids, mask

  def rewards(i):
    ctx, ctx_mask, ids, mask = inputs(i)
    if fmt.is_encoder_decoder:
      out = model(input_ids=ctx, attention_mask=ctx_mask, decoder_input_ids=ids,
                  decoder_attention_mask=mask, output_hidden_states=True)
      hidden = out.decoder_hidden_states[-1]
    else:
      full, full_mask = torch.cat([ctx, ids], 1), torch.cat([ctx_mask, mask], 1)
      pos = (full_mask.cumsum(-1) - 1).masked_fill(full_mask == 0, 1)
      out = model(input_ids=full, attention_mask=full_mask, position_ids=pos,
                  output_hidden_states=True)
      hidden = out.hidden_states[-1][:, ctx.shape[1]:]
    pool = mask.float()  # the original's: every real response position
    mean = (hidden * pool[..., None]).sum(1) / pool.sum(1, keepdim=True)
    return linear(dropout(mean))[:, 0]

  def loss(i, r):
    """The original's pair loop."""
    losses = []
    for a, b, factor in data.split.ratings[i]:
      if factor == 0:
        losses.append((r[a] - r[b]) ** 2)
      else:
        d = r[a] - r[b] if factor < 0 else r[b] - r[a]
        losses.append(-abs(factor) ** 0.5 * torch.nn.functional.logsigmoid(d))
    return torch.stack(losses).mean()

  def train_pass():
    model.train()
    dropout.train()
    for i in contexts:
      opt.zero_grad()
      loss(i, rewards(i)).backward()
      opt.step()

  def eval_losses():
    model.eval()
    dropout.eval()
    with torch.no_grad():
      return np.asarray([float(loss(i, rewards(i))) for i in contexts])

  return train_pass, eval_losses


def _torch_batched_side(reward, batches, left: bool):
  """A competent PyTorch step over our batches (the same contexts per step, the same AdamW
  steps): the bare backbone (no LM head), an encoder-decoder's contexts encoded once for all
  their responses, padding trimmed to each batch's longest, the pair losses as tensors (the
  mean over contexts with pairs of their mean pair loss, as ours). Returns (one pass, its
  eval-mode loss per context of each batch)."""
  import torch  # pylint: disable=import-outside-toplevel

  loaded = reward.backbone
  enc_dec = loaded.fmt.is_encoder_decoder
  model = torch_twin(loaded, lm_head=False)
  linear = torch_reward_head(reward).requires_grad_(True)
  dropout = torch.nn.Dropout(0.6)
  opt = torch.optim.AdamW([*model.parameters(), *linear.parameters()], lr=1e-5)

  def tensors(b):
    ctx, cmask = trim_padding(b["context_ids_BxC"], b["context_mask_BxC"], left)
    longest = max(int(b["response_mask_BxRxT"].sum(-1).max()), 1)
    rows, r = b["response_ids_BxRxT"].shape[:2]
    resp = b["response_ids_BxRxT"][..., :longest].reshape(rows * r, longest)
    rmask = b["response_mask_BxRxT"][..., :longest].reshape(rows * r, longest)
    return (*map(to_torch, (ctx, cmask, resp, rmask, b["pair_a_BxP"], b["pair_b_BxP"],
                            b["pair_mask_BxP"])),
            to_torch(b["factor_BxP"], torch.float32), r)

  inputs = [tensors(b) for b in batches]

  def context_losses(ctx, cmask, resp, rmask, pa, pb, pmask, factor, r):
    if enc_dec:
      enc = model.get_encoder()(input_ids=ctx, attention_mask=cmask).last_hidden_state
      hidden = model.get_decoder()(
          input_ids=resp, attention_mask=rmask,
          encoder_hidden_states=enc.repeat_interleave(r, 0),
          encoder_attention_mask=cmask.repeat_interleave(r, 0)).last_hidden_state
    else:
      c = ctx.shape[1]
      full = torch.cat([ctx.repeat_interleave(r, 0), resp], 1)
      full_mask = torch.cat([cmask.repeat_interleave(r, 0), rmask], 1)
      pos = (full_mask.cumsum(-1) - 1).masked_fill(full_mask == 0, 1)
      hidden = model(input_ids=full, attention_mask=full_mask,
                     position_ids=pos).last_hidden_state[:, c:]
    pool = rmask.float()  # the original's: every real response position
    mean = (hidden * pool[..., None]).sum(1) / pool.sum(1, keepdim=True).clamp(min=1.0)
    rewards = linear(dropout(mean))[:, 0].reshape(-1, r)
    ra, rb = rewards.gather(1, pa), rewards.gather(1, pb)
    d = torch.where(factor < 0, ra - rb, rb - ra)
    losses = torch.where(factor == 0, (ra - rb) ** 2,
                         -factor.abs().sqrt() * torch.nn.functional.logsigmoid(d))
    m = pmask.float()
    return (losses * m).sum(1) / m.sum(1).clamp(min=1.0), (m.sum(1) > 0).float()

  def train_pass():
    model.train()
    dropout.train()
    for x in inputs:
      opt.zero_grad()
      per_context, has = context_losses(*x)
      ((per_context * has).sum() / has.sum().clamp(min=1.0)).backward()
      opt.step()
    torch_sync()

  def eval_losses():
    model.eval()
    dropout.eval()
    with torch.no_grad():
      return [context_losses(*x)[0].cpu().numpy() for x in inputs]

  return train_pass, eval_losses


def _pass_flops(step, state, arrays) -> float:
  """XLA's FLOP count of the pass (each batch shape compiled once)."""
  per_shape: dict = {}
  total = 0.0
  for a in arrays:
    key = tuple(sorted((k, v.shape) for k, v in a.items()))
    if key not in per_shape:
      per_shape[key] = C.xla_flops(step.lower(state, a).compile())
    total += per_shape[key]
  return total


def run(cfg: BenchConfig) -> dict:
  pin_threads()
  dataset = cfg.dataset_dir if os.path.isdir(os.path.join(cfg.dataset_dir, "train",
                                                          "ratings.json")) else REWARD_DATA
  split = load_reward_split(os.path.join(dataset, "train"))
  reward = reward_model.new_reward_model(load_model(C.model_path(cfg)), seed=0)
  mesh = sharding.make_mesh(sharding.MeshConfig())
  shards = sharding.batch_shards(mesh)
  rows = -(-cfg.batch_size // shards) * shards
  data = reward_trainer.RewardData(split, reward.backbone.fmt, rows)
  n = min(cfg.max_examples, len(split)) // rows * rows  # whole batches only
  contexts = np.arange(n)
  pairs = sum(len(split.ratings[i]) for i in contexts)
  # The batches an epoch of train_reward_model takes (length-sorted windows, shuffled).
  batches = [data.make_batch(idx) for idx in data.batch_indices(contexts, seed=0)]
  tx, _ = make_optimizer(OptimizerConfig(initial_lr=1e-5, schedule="halving"), 100, 1)
  shard = state_shardings(abstract_state(reward.abstract_params(), tx), mesh)
  state = create_state(reward.params, tx, jax.random.PRNGKey(0), shard)
  bs = {k: sharding.batch_sharding(mesh, v.ndim) for k, v in batches[0].items()}
  programs = reward_trainer.programs(reward.backbone.model, tx, shard, mesh, bs,
                                     exclude_id=reward.pool_exclude_id, dropout=0.6)
  step, evaluate = programs.step, programs.evaluate
  arrays = [sharding.from_host(b, bs) for b in batches]
  ours_losses = np.zeros(n)
  for b, a in zip(batches, arrays):
    ours_losses[b["context_index_B"]] = np.asarray(evaluate(state.params, a)[0]["loss"])
  ours, _ = jitted_pass(step, state, arrays)
  flops = _pass_flops(step, state, arrays)

  sides = {"jax": ours}
  if cfg.torch and torch_available():
    batched_pass, batched_losses = _torch_batched_side(reward, batches,
                                                       not reward.backbone.fmt.is_encoder_decoder)
    theirs = np.zeros(n)
    for b, per_context in zip(batches, batched_losses()):
      real = b["context_index_B"] >= 0
      theirs[b["context_index_B"][real]] = per_context[real]
    torch_pass, torch_losses = _torch_side(reward, data, contexts)
    for name, losses in (("batched", theirs), ("original-style", torch_losses())):
      np.testing.assert_allclose(ours_losses, losses, rtol=1e-4, atol=1e-5,
                                 err_msg=f"PyTorch {name}: eval-mode losses differ")
    print(f"eval-mode losses of all {n} contexts equal on all three sides (rtol 1e-4)")
    sides["torch"] = batched_pass
    sides["original"] = torch_pass
  shape = C.ffn_shape(reward.backbone.model, batches[0]["response_ids_BxRxT"].size)
  times = interleaved({**sides, **C.matmul_probes(shape)}, cfg.repeats)
  roof = C.roofline(times, flops, shape)
  print(f"{n} contexts, {pairs} rated pairs; ours and PyTorch batched: {len(batches)} steps of "
        f"{rows} contexts; the original's step: {n} steps of one context; repeats of the whole "
        f"pass: {cfg.repeats}")
  result = rates(times, pairs, "rated pairs/s")
  original = result.get("original")
  return report(cfg, "rated pairs/s", result["jax"], result.get("torch"),
                {"repeats": cfg.repeats, "contexts": n, "contexts_per_step": rows,
                 "original_step": None if original is None else round(original, 2),
                 "ratio_to_original_step": None if not original else round(
                     result["jax"] / original, 3), **roof})
