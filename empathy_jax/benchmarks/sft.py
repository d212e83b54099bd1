"""Train-step throughput (non-pad context + target tokens per second): our jitted sharded step
vs an equivalent transformers PyTorch step (forward, loss, backward, AdamW) on the same batches,
and the achieved fraction of this machine's fp32 matmul rate."""

from __future__ import annotations

import functools
import os
import time

import jax
import numpy as np

from empathy_jax import sharding
from empathy_jax.benchmarks.common import (BenchConfig, matmul_flops_per_second, report,
                                           torch_available, torch_twin)
from empathy_jax.data.dialogue_dataset import load_dialogue_split
from empathy_jax.data.pipeline import make_batcher, tokenize_split
from empathy_jax.models.loading import load_model
from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer
from empathy_jax.training.sft import BATCH_KEYS, train_step
from empathy_jax.training.state import abstract_state, create_state, state_shardings

NUM_BATCHES = 6


def _batches(loaded, cfg: BenchConfig):
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "train"), 0.3)
  split = split.select(range(cfg.batch_size * NUM_BATCHES * 4))
  table = tokenize_split(split, loaded.fmt)
  batches = list(make_batcher(loaded.fmt, cfg.batch_size).batches(table, seed=0))
  # The most common shape, so one compile serves every timed step.
  shapes = [b.shape_key for b in batches]
  common = max(set(shapes), key=shapes.count)
  return [b for b in batches if b.shape_key == common][:NUM_BATCHES]


def _torch_steps(loaded, batches) -> float:
  import torch  # pylint: disable=import-outside-toplevel

  model = torch_twin(loaded).train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
  t = lambda x: torch.from_numpy(np.asarray(x)).long()

  def step(b):
    opt.zero_grad()
    if loaded.model.is_encoder_decoder:
      logits = model(input_ids=t(b.context_ids_BxC), attention_mask=t(b.context_mask_BxC),
                     decoder_input_ids=t(b.target_ids_BxT),
                     decoder_attention_mask=t(b.target_mask_BxT)).logits[:, :-1]
      labels = t(b.target_ids_BxT)[:, 1:].masked_fill(t(b.target_mask_BxT)[:, 1:] == 0, -100)
    else:
      c = b.context_ids_BxC.shape[1]
      ids = torch.cat([t(b.context_ids_BxC), t(b.target_ids_BxT)], 1)
      mask = torch.cat([t(b.context_mask_BxC), t(b.target_mask_BxT)], 1)
      pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
      logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, c - 1:-1]
      labels = t(b.target_ids_BxT).masked_fill(t(b.target_mask_BxT) == 0, -100)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             labels.reshape(-1), ignore_index=-100)
    loss.backward()
    opt.step()

  step(batches[0])  # warm-up
  start = time.perf_counter()
  for b in batches:
    step(b)
  return time.perf_counter() - start


def run(cfg: BenchConfig) -> dict:
  loaded = load_model(cfg.model)
  batches = _batches(loaded, cfg)
  tokens = sum(int(b.context_mask_BxC.sum() + b.target_mask_BxT.sum()) for b in batches)
  tx, _ = make_optimizer(OptimizerConfig(initial_lr=1e-5), 100, 1)
  mesh = sharding.make_mesh(sharding.MeshConfig())
  shard = state_shardings(abstract_state(loaded.model.abstract_params(), tx), mesh)
  state = create_state(loaded.params, tx, jax.random.PRNGKey(0), shard)
  bs = {k: sharding.batch_sharding(mesh, 1 if k == "example_index_B" else 2)
        for k in BATCH_KEYS}
  step = jax.jit(functools.partial(train_step, model=loaded.model, tx=tx, grad_accum=1),
                 in_shardings=(shard, bs), donate_argnums=0)
  arrays = [{k: jax.device_put(getattr(b, k), bs[k]) for k in BATCH_KEYS} for b in batches]
  compiled = step.lower(state, arrays[0]).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops_per_step = float(cost.get("flops", 0.0))
  state, m = compiled(state, arrays[0])  # warm-up
  jax.block_until_ready(m)
  start = time.perf_counter()
  for a in arrays:
    state, m = compiled(state, a)
  jax.block_until_ready((state, m))
  seconds = time.perf_counter() - start
  jax_tps = tokens / seconds
  peak = matmul_flops_per_second()
  fraction = flops_per_step * len(arrays) / seconds / peak
  b0 = batches[0]
  print(f"batches: {len(batches)} x {b0.shape_key} (batch, context, target), {tokens} real tokens")
  print(f"jax:   {seconds:.3f} s, {jax_tps:.1f} tokens/s, {flops_per_step / 1e9:.1f} GFLOP/step, "
        f"{fraction:.1%} of the measured fp32 matmul rate ({peak / 1e9:.0f} GFLOP/s)")
  torch_tps = None
  if cfg.torch and torch_available():
    torch_seconds = _torch_steps(loaded, batches)
    torch_tps = tokens / torch_seconds
    print(f"torch: {torch_seconds:.3f} s, {torch_tps:.1f} tokens/s, "
          f"{flops_per_step * len(batches) / torch_seconds / peak:.1%} of the matmul rate")
  return report(cfg, "tokens/s", jax_tps, torch_tps, {"flop_fraction": round(fraction, 3)})
