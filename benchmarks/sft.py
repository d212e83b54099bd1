"""Train-step throughput (non-pad context + target tokens per second): our jitted sharded step
vs an equivalent transformers PyTorch step (forward, loss, backward, AdamW) on the same batches
(PyTorch's padded to each batch's longest example, as its users pad), equal repeats of the
whole pass, interleaved, median and range; and the achieved fraction of this machine's fp32
matmul rate counting the FLOPs of real tokens and of the padded shapes."""

from __future__ import annotations

import os

import jax

from empathy_jax import sharding
from benchmarks import common as C
from benchmarks.common import (BenchConfig, describe, interleaved, matmul_rates,
                               jitted_pass, pin_threads, report, spread, to_torch,
                               torch_available, torch_response_logits, torch_sync,
                               torch_twin, trim_padding)
from empathy_jax.data.dialogue_dataset import load_dialogue_split
from empathy_jax.data.pipeline import make_batcher, tokenize_split
from empathy_jax.models.loading import load_model
from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer
from empathy_jax.training import sft
from empathy_jax.training.sft import BATCH_KEYS
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


def _torch_steps(loaded, batches):
  """(a callable running one PyTorch train step per batch (padded to its longest), `loss0()`:
  the first batch's mean token loss with dropout off). Decoder-only models project only the
  positions that predict a target token onto the vocabulary, as ours do."""
  import torch  # pylint: disable=import-outside-toplevel

  model = torch_twin(loaded).train()
  opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
  # The batches are on the device before timing, as ours are.
  left = not loaded.model.is_encoder_decoder
  trimmed = [tuple(map(to_torch, (*trim_padding(b.context_ids_BxC, b.context_mask_BxC, left),
                                  *trim_padding(b.target_ids_BxT, b.target_mask_BxT, False))))
             for b in batches]

  def loss_of(*batch):
    logits, targets, mask = torch_response_logits(model, loaded.model.is_encoder_decoder, *batch)
    labels = targets.masked_fill(mask == 0, -100)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                             labels.reshape(-1), ignore_index=-100)

  def step(*batch):
    opt.zero_grad()
    loss_of(*batch).backward()
    opt.step()

  def loss0():
    model.eval()
    with torch.no_grad():
      value = float(loss_of(*trimmed[0]))
    model.train()
    return value

  def all_steps():
    for b in trimmed:
      step(*b)
    torch_sync()

  return all_steps, loss0


def run(cfg: BenchConfig) -> dict:
  pin_threads()
  _, torch_peak = matmul_rates()  # PyTorch's rate for its side's fraction
  loaded = load_model(C.model_path(cfg))
  batches = _batches(loaded, cfg)
  tokens = sum(int(b.context_mask_BxC.sum() + b.target_mask_BxT.sum()) for b in batches)
  padded = sum(b.context_mask_BxC.size + b.target_mask_BxT.size for b in batches)
  tx, _ = make_optimizer(OptimizerConfig(initial_lr=1e-5), 100, 1)
  mesh = sharding.make_mesh(sharding.MeshConfig())
  shard = state_shardings(abstract_state(loaded.model.abstract_params(), tx), mesh)
  state = create_state(loaded.params, tx, jax.random.PRNGKey(0), shard)
  bs = sft.batch_shardings(mesh)
  programs = sft.programs(loaded.model, tx, shard, mesh)
  step = programs.step
  arrays = [{k: jax.device_put(getattr(b, k), bs[k]) for k in BATCH_KEYS} for b in batches]
  compiled = step.lower(state, arrays[0]).compile()
  flops = C.xla_flops(compiled) * len(arrays)  # on the padded shapes
  ours, _ = jitted_pass(compiled, state, arrays)

  sides = {"jax": ours}
  if cfg.torch and torch_available():
    sides["torch"], torch_loss0 = _torch_steps(loaded, batches)
    # The same work: the first batch's mean token loss at the starting weights, dropout off.
    nll, count = programs.evaluate(state.params, arrays[0])
    ours0, theirs0 = float(nll) / float(count), torch_loss0()
    if abs(ours0 - theirs0) > 1e-4 * abs(theirs0) + 1e-5:
      raise AssertionError(f"first batch's loss: ours {ours0:.6f}, PyTorch's {theirs0:.6f}; "
                           f"the comparison would not be of the same work")
    print(f"same work: the first batch's loss {ours0:.5f} on both sides (rtol 1e-4)")
  b0 = batches[0]
  shape = C.lm_head_shape(loaded.model, b0.target_mask_BxT.size)
  times = interleaved({**sides, **C.matmul_probes(shape)}, cfg.repeats)
  roof = C.roofline(times, flops, shape)
  peak = roof["matmul_1024_gflops"] * 1e9  # XLA's, measured beside the repeats
  print(f"batches: {len(batches)} x {b0.shape_key} (batch, context, target), {tokens} real "
        f"tokens in {padded} padded positions ({tokens / padded:.0%}); repeats of the "
        f"{len(batches)}-step pass: {cfg.repeats}")
  result, fractions = {}, {}
  for side, seconds in times.items():
    median = spread(seconds)["median"]
    rate = peak if side == "jax" else torch_peak
    fractions[side] = {"padded": flops / median / rate, "real": flops * tokens / padded / median
                       / rate}
    print(f"{side:>5}: {describe(seconds)}, {tokens / median:.1f} tokens/s; of its own "
          f"framework's matmul rate: {fractions[side]['real']:.1%} counting real tokens' FLOPs, "
          f"{fractions[side]['padded']:.1%} counting our padded shapes' FLOPs")
    result[side] = tokens / median
  return report(cfg, "tokens/s", result["jax"], result.get("torch"), {
      "repeats": cfg.repeats, "real_token_share": round(tokens / padded, 3),
      "flop_fraction_real": round(fractions["jax"]["real"], 3),
      "flop_fraction_padded": round(fractions["jax"]["padded"], 3), **roof})
