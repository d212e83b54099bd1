"""DPO train steps (preference pairs per second): our jitted step (`training.dpo.train_step`)
vs the same step in PyTorch on transformers' model -- the chosen and rejected responses in one
forward over 2B rows, logits only at response positions on both sides, the sigmoid DPO loss
against the same precomputed reference log-probs, backward, AdamW -- on the same batches of the
shipped reward dataset's rated pairs (PyTorch's padded to each batch's longest). Before timing,
both sides' first-step losses and sequence log-probs are checked equal. Equal repeats of the
whole pass, interleaved, median and range."""

from __future__ import annotations

import functools
import os

import jax
import numpy as np

from benchmarks import common as C
from benchmarks.common import (BenchConfig, interleaved, jitted_pass, pin_threads, rates,
                               report, torch_available, torch_response_logits, torch_twin,
                               trim_padding)
from empathy_jax import sharding
from empathy_jax.data.dialogue_dataset import load_reward_split
from empathy_jax.experiments import REWARD_DATA
from empathy_jax.models.loading import load_model
from empathy_jax.training import dpo
from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer
from empathy_jax.training.reward_trainer import RewardData
from empathy_jax.training.state import abstract_state, create_state, state_shardings

NUM_BATCHES = 6
BETA = 0.1
# The shipped reward dataset, in the checkout this benchmark runs from (whatever the cwd).
DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), REWARD_DATA)


def _batches(loaded, rows: int):
  """NUM_BATCHES batches of pairs of the most common (context, response) shape, with the
  reference's log-probs (the starting policy's, computed by our side once; both sides read
  them)."""
  split = load_reward_split(os.path.join(DATA, "train"))
  data = RewardData(split, loaded.fmt, rows)
  pairs = dpo.preference_pairs(split.ratings, range(len(split)), "exclude", "none")
  batcher = dpo.PairBatcher(data, rows)
  batches = [batcher.make_batch(pairs.take(idx), None)
             for idx in batcher.batch_indices(pairs, seed=0)]
  batches = [b for b in batches if b["real_B"].all()]  # whole batches only
  shapes = [(b["context_ids_BxC"].shape, b["chosen_ids_BxT"].shape) for b in batches]
  common = max(set(shapes), key=shapes.count)
  batches = [b for b in batches if (b["context_ids_BxC"].shape, b["chosen_ids_BxT"].shape)
             == common][:NUM_BATCHES]
  ref = jax.jit(functools.partial(dpo.reference_step, model=loaded.model, mean=False))
  for b in batches:
    logps = np.asarray(ref(loaded.params, b))
    b["ref_chosen_B"], b["ref_rejected_B"] = logps[:, 0], logps[:, 1]
  return batches


def torch_side(loaded, batches, lr: float = 1e-5):
  """(one PyTorch pass over the batches, `evaluate()` -> the first batch's (loss, chosen,
  rejected) at the current weights)."""
  import torch  # pylint: disable=import-outside-toplevel

  model = torch_twin(loaded).eval()  # dropout off, as our DPO step (TRL's disable_dropout)
  opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
  t = lambda x: torch.from_numpy(np.asarray(x)).long()
  left = not loaded.model.is_encoder_decoder

  def trimmed(b):
    c_ids, c_mask = trim_padding(b["context_ids_BxC"], b["context_mask_BxC"], left)
    longest = max(int(b["chosen_mask_BxT"].sum(1).max()),
                  int(b["rejected_mask_BxT"].sum(1).max()))
    cut = lambda x: x[:, :longest]
    r_ids = np.concatenate([cut(b["chosen_ids_BxT"]), cut(b["rejected_ids_BxT"])])
    r_mask = np.concatenate([cut(b["chosen_mask_BxT"]), cut(b["rejected_mask_BxT"])])
    return (np.concatenate([c_ids] * 2), np.concatenate([c_mask] * 2), r_ids, r_mask,
            torch.tensor(b["ref_chosen_B"]), torch.tensor(b["ref_rejected_B"]))

  inputs = [trimmed(b) for b in batches]

  def logps(c_ids, c_mask, r_ids, r_mask):
    """[2B] summed log-probs of the responses; logits only at response positions."""
    logits, targets, mask = torch_response_logits(model, loaded.model.is_encoder_decoder,
                                                  t(c_ids), t(c_mask), t(r_ids), t(r_mask))
    logp = torch.log_softmax(logits.float(), -1).gather(-1, targets[..., None])[..., 0]
    return (logp * mask).sum(1)

  def loss_of(c_ids, c_mask, r_ids, r_mask, ref_c, ref_r):
    both = logps(c_ids, c_mask, r_ids, r_mask)
    b = ref_c.shape[0]
    chosen, rejected = both[:b], both[b:]
    h = (chosen - rejected) - (ref_c - ref_r)
    return -torch.nn.functional.logsigmoid(BETA * h).mean(), chosen, rejected

  def evaluate():
    with torch.no_grad():
      return [x.detach().numpy() for x in loss_of(*inputs[0])]

  def train_pass():
    for x in inputs:
      opt.zero_grad()
      loss_of(*x)[0].backward()
      opt.step()

  return train_pass, evaluate


def our_side(loaded, batches, mesh, lr: float = 1e-5):
  """(one pass of our jitted step over the batches, `evaluate()` as `torch_side`'s, XLA's FLOP
  count of the pass). AdamW at a constant `lr` (torch's, which the other side uses)."""
  # The step reads the loss settings (beta, sigmoid) only; the model named is a placeholder.
  run_cfg = dpo.DPOConfig(dataset_dir=DATA, output_dir=".", model="GODEL_TINY", beta=BETA)
  tx, _ = make_optimizer(OptimizerConfig(initial_lr=lr, schedule="step", weight_decay=0.0),
                         10**9, 1)
  shard = state_shardings(abstract_state(loaded.model.abstract_params(), tx), mesh)
  state = create_state(loaded.params, tx, jax.random.PRNGKey(0), shard)
  bs = dpo.batch_shardings(mesh)
  step = dpo.programs(loaded.model, tx, shard, mesh, run_cfg).step
  arrays = [sharding.from_host(b, bs) for b in batches]
  logps = jax.jit(functools.partial(dpo.pair_logps, loaded.model, mean=False))
  train_pass, holder = jitted_pass(step, state, arrays)

  def evaluate():
    chosen, rejected = logps(holder["state"].params, arrays[0])
    loss = np.mean(dpo.dpo_loss(chosen, rejected, batches[0]["ref_chosen_B"],
                                batches[0]["ref_rejected_B"], BETA))
    return float(loss), np.asarray(chosen), np.asarray(rejected)

  flops = C.xla_flops(step.lower(state, arrays[0]).compile()) * len(arrays)
  return train_pass, evaluate, flops


def check_same(ours, theirs, rtol: float = 1e-4) -> None:
  """Raises unless two `evaluate()` results (loss, chosen, rejected log-probs) agree."""
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=1e-3)


def run(cfg: BenchConfig) -> dict:
  pin_threads()
  loaded = load_model(C.model_path(cfg))
  mesh = sharding.make_mesh(sharding.MeshConfig())
  shards = sharding.batch_shards(mesh)
  rows = -(-cfg.batch_size // shards) * shards
  batches = _batches(loaded, rows)
  ours, ours_now, flops = our_side(loaded, batches, mesh)
  sides = {"jax": ours}
  if cfg.torch and torch_available():
    torch_pass, torch_now = torch_side(loaded, batches)
    check_same(ours_now(), torch_now())
    print(f"the first batch's loss and {2 * rows} sequence log-probs equal on both sides "
          f"(rtol 1e-4)")
    sides["torch"] = torch_pass
  b0 = batches[0]
  shape = C.lm_head_shape(loaded.model, 2 * b0["chosen_mask_BxT"].size)
  times = interleaved({**sides, **C.matmul_probes(shape)}, cfg.repeats)
  roof = C.roofline(times, flops, shape)
  pairs = rows * len(batches)
  print(f"{len(batches)} batches of {rows} pairs, contexts {b0['context_ids_BxC'].shape[1]} and "
        f"responses {b0['chosen_ids_BxT'].shape[1]} tokens (bucketed; PyTorch's trimmed to "
        f"each batch's longest); repeats of the whole pass: {cfg.repeats}")
  result = rates(times, pairs, "pairs/s")
  return report(cfg, "pairs/s", result["jax"], result.get("torch"),
                {"repeats": cfg.repeats, "pairs_per_step": rows, **roof})
