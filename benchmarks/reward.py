"""Reward-model training throughput (rated pairs per second): our jitted step (several contexts
per step, responses grouped on one encoder pass, the pair loss as arrays) against a PyTorch
implementation of the original's step (one context per step: its responses batched with the
context repeated, padded to their longest; the model's forward with hidden states; the mean
over response tokens; dropout and the linear head; a Python loop over the rated pairs; AdamW),
on the same weights, head and contexts. Before timing, both sides' eval-mode losses of every
context are asserted equal; the timed passes run in train mode on both sides."""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

from empathy_jax import sharding
from benchmarks.common import (BenchConfig, interleaved, pin_threads, rates, report,
                               torch_available, torch_twin)
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


def run(cfg: BenchConfig) -> dict:
  pin_threads()
  dataset = cfg.dataset_dir if os.path.isdir(os.path.join(cfg.dataset_dir, "train",
                                                          "ratings.json")) else REWARD_DATA
  split = load_reward_split(os.path.join(dataset, "train"))
  reward = reward_model.new_reward_model(load_model(cfg.model), seed=0)
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
  model, exclude = reward.backbone.model, reward.pool_exclude_id
  args = dict(loss="original", margin=0.0, center=0.0)
  step = jax.jit(functools.partial(reward_trainer.train_step, model=model, tx=tx,
                                   exclude_id=exclude,
                                   dropout=0.6, **args),
                 in_shardings=(shard, bs), donate_argnums=0)
  evaluate = jax.jit(functools.partial(reward_trainer.eval_step, model=model, exclude_id=exclude,
                                       **args))
  arrays = [sharding.from_host(b, bs) for b in batches]
  ours_losses = np.zeros(n)
  for b, a in zip(batches, arrays):
    ours_losses[b["context_index_B"]] = np.asarray(evaluate(state.params, a)[0]["loss"])
  holder = {"state": state}

  def ours():
    state = holder["state"]
    for a in arrays:
      state, m = step(state, a)
    holder["state"] = jax.block_until_ready((state, m))[0]

  sides = {"jax": ours}
  if cfg.torch and torch_available():
    torch_pass, torch_losses = _torch_side(reward, data, contexts)
    np.testing.assert_allclose(ours_losses, torch_losses(), rtol=1e-4, atol=1e-5)
    print(f"eval-mode losses of all {n} contexts equal on both sides (rtol 1e-4)")
    sides["torch"] = torch_pass
  times = interleaved(sides, cfg.repeats)
  print(f"{n} contexts, {pairs} rated pairs; ours: {len(batches)} steps of {rows} contexts; "
        f"PyTorch: {n} steps of one context; repeats of the whole pass: {cfg.repeats}")
  result = rates(times, pairs, "rated pairs/s")
  return report(cfg, "rated pairs/s", result["jax"], result.get("torch"),
                {"repeats": cfg.repeats, "contexts": n, "contexts_per_step": rows})
