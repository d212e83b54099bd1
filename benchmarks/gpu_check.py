"""The GPU check (`benchmarks/gpu_check.sh`): on one NVIDIA GPU, a few minutes, one JSON line per
figure (printed, and appended to `--out`):

- `env`: the device, the versions, and the bf16 matmul rate measured here through XLA and
  PyTorch (the ceiling the other figures are read against, beside the datasheet's);
- `sft_mfu`: SFT train steps at GODEL_LARGE's shapes (random weights, bf16 compute, float32
  parameters and AdamW): tokens/s and the model FLOPs utilisation (XLA's FLOP count of the
  step over its time, against the datasheet's dense bf16 peak and the measured matmul rate);
- `generation_greedy`, `generation_beam4`: tokens/s of our jitted generation against
  transformers' `generate` on the same GPU, same weights (GODEL-base's architecture, random),
  same batches of test.py (the test split, length-sorted), exactly `max_new_tokens` per row;
  the tokens are compared first (`mismatched_rows`);
- `ppo`: one PPO iteration at GODEL-base's shapes against the PyTorch implementation of
  `benchmarks/ppo.py`, its same-work check first (`same_work`).

Generation and PPO compare float32 models with full-precision matmuls on both sides (no TF32),
so that the two frameworks do the same arithmetic and their tokens can be compared. A figure
that fails is reported as a line with `error` and the check goes on. `--dry_run` runs every
figure at tiny shapes on whatever JAX finds (the CPU in the suite), so the script stays tested.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np

from benchmarks import common
from benchmarks.common import timed, xla_flops

FIGURES = ("env", "generation_greedy", "ppo", "generation_beam4", "sft_mfu")
# Dense bf16 tensor-core peaks from the vendors' datasheets (FLOP/s, no sparsity), by the
# device name JAX reports.
DATASHEET_BF16 = (("H100 PCIe", 756e12), ("H100", 989.4e12), ("H200", 989.4e12),
                  ("H800", 989.4e12), ("A100", 312e12))


@dataclasses.dataclass(frozen=True)
class Sizes:
  """The shapes of one check: the real one, or `--dry_run`'s tiny twin."""

  matmul: int = 8192
  sft_model: str = "GODEL_LARGE"
  sft_batch: int = 32
  sft_context: int = 256
  sft_target: int = 64
  sft_steps: int = 10
  gen_model: str = "GODEL_SMALL"  # GODEL-base's architecture (PUBLISHED_ARCHITECTURES)
  gen_batch: int = 32
  gen_batches: int = 1
  new_tokens: int = 32
  ppo_batch: int = 32
  repeats: int = 3


DRY_RUN = Sizes(matmul=256, sft_model="GODEL_TINY", sft_batch=2, sft_context=16, sft_target=8,
                sft_steps=2, gen_model="GODEL_TINY", gen_batch=4, gen_batches=1, new_tokens=4,
                ppo_batch=2, repeats=1)


_FIGURE_START = [0.0]


def phase(name: str) -> None:
  """Prints (stderr) how far into its figure the check is, so that a figure cut off by a time
  limit still says where its time went."""
  print(f"  {time.perf_counter() - _FIGURE_START[0]:7.1f} s  {name}", file=sys.stderr,
        flush=True)


def datasheet_peak(device_kind: str) -> float | None:
  for name, peak in DATASHEET_BF16:
    if name in device_kind:
      return peak
  return None


def matmul_rates(n: int, repeats: int) -> dict:
  """bf16 n x n x n matmul FLOP/s through XLA and PyTorch on the same device, 10 products per
  timed call (one call's dispatch is not the figure)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  # Chained products (each needs the one before), scaled to stay finite: ten products that
  # XLA cannot merge into one.
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.bfloat16) / np.sqrt(n)
  ten = jax.jit(lambda x: functools.reduce(lambda acc, _: acc @ x, range(10), x))
  out = {"xla": 20 * n ** 3 / timed(lambda: ten(a).block_until_ready(), repeats)}
  from benchmarks.common import torch_available, torch_device, torch_sync  # pylint: disable=import-outside-toplevel

  if torch_available():
    import torch  # pylint: disable=import-outside-toplevel

    t = torch.randn(n, n, dtype=torch.bfloat16, device=torch_device()) / n ** 0.5

    def torch_ten():
      acc = t
      for _ in range(10):
        acc = acc @ t
      torch_sync()

    out["torch"] = 20 * n ** 3 / timed(torch_ten, repeats)
  return out


def env(sizes: Sizes) -> dict:
  import jax  # pylint: disable=import-outside-toplevel

  from benchmarks.common import cpu_model, torch_available  # pylint: disable=import-outside-toplevel

  device = jax.devices()[0]
  out = {"backend": jax.default_backend(), "device": device.device_kind,
         "devices": jax.device_count(), "cpu": cpu_model(), "jax": jax.__version__}
  if torch_available():
    import torch  # pylint: disable=import-outside-toplevel

    out["torch"] = torch.__version__
    out["torch_device"] = (torch.cuda.get_device_name(0) if torch.cuda.is_available()
                           else "cpu")
  import transformers  # pylint: disable=import-outside-toplevel

  out["transformers"] = transformers.__version__
  rates = matmul_rates(sizes.matmul, sizes.repeats)
  # 4 significant digits: a CPU's dry run measures GFLOP/s, which 2 decimals of TFLOP/s lose.
  out.update({f"bf16_matmul_{k}_tflops": float(f"{v / 1e12:.4g}") for k, v in rates.items()})
  out["matmul_size"] = sizes.matmul
  peak = datasheet_peak(device.device_kind)
  out["datasheet_bf16_tflops"] = None if peak is None else round(peak / 1e12, 1)
  return out


def sft_mfu(sizes: Sizes, measured_tflops: float | None) -> dict:
  """SFT steps at `sizes.sft_model`'s shapes with random weights: bf16 compute, float32
  parameters and AdamW, dropout as the model's config has it, full (unpadded) batches. The
  layers are scanned (`--scan_layers`: one layer compiled per stack, a compile of seconds
  rather than minutes for 48 layers); the FLOPs are XLA's count of the same step unscanned,
  lowered but not compiled (its cost analysis counts a loop's body once)."""
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  from empathy_jax import planning, sharding  # pylint: disable=import-outside-toplevel
  from empathy_jax.families import config_from_hf  # pylint: disable=import-outside-toplevel
  from empathy_jax.models.api import DialogueModel, param_count  # pylint: disable=import-outside-toplevel
  from empathy_jax.models.configs import RuntimeOptions  # pylint: disable=import-outside-toplevel
  from empathy_jax.training import sft  # pylint: disable=import-outside-toplevel
  from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer  # pylint: disable=import-outside-toplevel
  from empathy_jax.training.state import abstract_state, create_state, state_shardings  # pylint: disable=import-outside-toplevel

  hf = planning.architecture(sizes.sft_model)
  model = DialogueModel(config_from_hf(hf, RuntimeOptions(dtype="bfloat16", scan_layers=True)))
  unscanned = DialogueModel(config_from_hf(hf, RuntimeOptions(dtype="bfloat16")))
  params = model.init_params(jax.random.PRNGKey(0))
  n_params = param_count(params)
  phase(f"initialised {n_params / 1e6:.0f}M parameters")
  tx, _ = make_optimizer(OptimizerConfig(initial_lr=1e-5), 1000, 1)
  mesh = sharding.make_mesh(sharding.MeshConfig())
  shard = state_shardings(abstract_state(model.abstract_params(), tx), mesh)
  state = create_state(params, tx, jax.random.PRNGKey(0), shard)
  del params
  phase("train state on the device")
  b, c, t = sizes.sft_batch, sizes.sft_context, sizes.sft_target
  rng = np.random.default_rng(0)
  vocab = hf["vocab_size"]
  host = {"context_ids_BxC": rng.integers(2, vocab, (b, c)).astype(np.int32),
          "context_mask_BxC": np.ones((b, c), np.int32),
          "target_ids_BxT": rng.integers(2, vocab, (b, t)).astype(np.int32),
          "target_mask_BxT": np.ones((b, t), np.int32),
          "example_index_B": np.arange(b, dtype=np.int32)}
  bs = sft.batch_shardings(mesh)
  batch = {k: jax.device_put(v, bs[k]) for k, v in host.items()}
  step = sft.programs(model, tx, shard, mesh).step
  start = time.perf_counter()
  compiled = step.lower(state, batch).compile()
  compile_s = time.perf_counter() - start
  phase("compiled the step")
  shapes = nn.unbox(abstract_state(unscanned.abstract_params(), tx))
  flops = xla_flops(jax.jit(functools.partial(sft.train_step, model=unscanned, tx=tx,
                                               grad_accum=1)).lower(shapes, batch))
  phase("counted the unscanned step's FLOPs")
  holder = {"state": state}

  def steps():
    s = holder["state"]
    for _ in range(sizes.sft_steps):
      s, metrics = compiled(s, batch)
    holder["state"] = s
    jnp.asarray(metrics["loss"]).block_until_ready()

  seconds = timed(steps, sizes.repeats) / sizes.sft_steps
  achieved = flops / seconds
  tokens = b * (c + t)
  peak = datasheet_peak(jax.devices()[0].device_kind)
  return {"model": f"{sizes.sft_model} shapes, random weights", "params": n_params,
          "batch": [b, c, t], "dtype": "bfloat16 compute, float32 params and AdamW",
          "step_ms": round(seconds * 1e3, 2), "tokens_per_s": round(tokens / seconds, 1),
          "step_tflop_xla": round(flops / 1e12, 3),
          "step_tflop_6nd": round(6 * n_params * tokens / 1e12, 3),
          "achieved_tflops": round(achieved / 1e12, 2),
          "mfu_datasheet": None if peak is None else round(achieved / peak, 3),
          "fraction_of_measured_matmul": None if not measured_tflops else round(
              achieved / (measured_tflops * 1e12), 3),
          "compile_s": round(compile_s, 1), "steps_timed": sizes.sft_steps,
          "repeats": sizes.repeats}


def random_model_dir(name: str, folder: str) -> str:
  path = common.random_model_dir(name, folder)
  phase(f"wrote a random {name} model folder")
  return path


@contextlib.contextmanager
def full_precision():
  """float32 matmuls at full precision in both frameworks (no TF32): the same arithmetic."""
  import jax  # pylint: disable=import-outside-toplevel

  from benchmarks.common import torch_available  # pylint: disable=import-outside-toplevel

  saved = None
  if torch_available():
    import torch  # pylint: disable=import-outside-toplevel

    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
  try:
    with jax.default_matmul_precision("highest"):
      yield
  finally:
    if saved is not None:
      torch.backends.cuda.matmul.allow_tf32 = saved


def generation(sizes: Sizes, model_path: str, dataset_dir: str, beams: int) -> dict:
  from benchmarks import generation as gen_bench  # pylint: disable=import-outside-toplevel
  from benchmarks.common import BenchConfig, realistic_batches  # pylint: disable=import-outside-toplevel
  from empathy_jax.models.loading import load_model  # pylint: disable=import-outside-toplevel

  cfg = BenchConfig(mode="generation", model=model_path, batch_size=sizes.gen_batch,
                    beam_width=beams, max_new_tokens=sizes.new_tokens, repeats=sizes.repeats,
                    dataset_dir=dataset_dir)
  with full_precision():
    loaded = load_model(model_path)
    batches = realistic_batches(loaded, cfg, sizes.gen_batches)
    phase("model loaded, batches made")
    result = gen_bench.measure("test.py's batches", loaded, batches,
                               gen_bench.gen_config(loaded, cfg), cfg, pack=False, strict=False)
  out = {"model": f"{sizes.gen_model} shapes, random weights, float32", "beams": beams,
         "batches": [len(batches), sizes.gen_batch], "new_tokens": sizes.new_tokens,
         "jax_tokens_per_s": round(result["jax"]["tokens_per_s"], 1)}
  if "torch" in result:
    out.update(torch_tokens_per_s=round(result["torch"]["tokens_per_s"], 1),
               ratio=round(result["jax"]["tokens_per_s"] / result["torch"]["tokens_per_s"], 3),
               mismatched_rows=result["mismatched_rows"],
               rows=len(batches) * sizes.gen_batch)
  return out


def ppo(sizes: Sizes, model_path: str, dataset_dir: str) -> dict:
  from benchmarks import ppo as ppo_bench  # pylint: disable=import-outside-toplevel
  from benchmarks.common import BenchConfig  # pylint: disable=import-outside-toplevel

  cfg = BenchConfig(mode="ppo", model=model_path, batch_size=sizes.ppo_batch,
                    max_new_tokens=sizes.new_tokens, repeats=sizes.repeats,
                    dataset_dir=dataset_dir)
  with full_precision():
    result = ppo_bench.run(cfg, strict=False)
  keep = ("jax", "torch", "ratio", "split_seconds", "same_work", "update_gflop",
          "update_fraction_of_matmul_rate", "ppo_epochs")
  return {"model": f"{sizes.gen_model} shapes, random weights, float32",
          "episodes": sizes.ppo_batch, "new_tokens": sizes.new_tokens,
          "unit": "episodes/s", **{k: result.get(k) for k in keep}}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--dry_run", action="store_true",
                      help="Tiny shapes on whatever JAX finds (the suite's CPU check).")
  parser.add_argument("--out", help="Also append each JSON line to this file.")
  parser.add_argument("--only", default=",".join(FIGURES),
                      help=f"Comma-separated figures, of: {', '.join(FIGURES)}.")
  parser.add_argument("--dataset_dir", default="datasets/empathetic_dialogues",
                      help="Dialogue dataset whose test split gives the batches.")
  args = parser.parse_args(argv)
  wanted = [f for f in args.only.split(",") if f]
  unknown = sorted(set(wanted) - set(FIGURES))
  if unknown:
    print(f"error: --only: unknown figures {unknown}; known: {', '.join(FIGURES)}")
    return 1
  if not os.path.isdir(os.path.join(args.dataset_dir, "test")):
    print(f"error: --dataset_dir: {args.dataset_dir}: no test split")
    return 1
  sizes = DRY_RUN if args.dry_run else Sizes()
  import jax  # pylint: disable=import-outside-toplevel

  if not args.dry_run and jax.default_backend() != "gpu":
    print(f"error: no GPU: JAX runs on {jax.default_backend()} (install jax[cuda12]; "
          f"--dry_run checks the script on a CPU)")
    return 1
  failures, measured = 0, None
  folder = tempfile.mkdtemp(prefix="gpu_check_")
  model_path = None
  for figure in wanted:
    start = _FIGURE_START[0] = time.perf_counter()
    try:
      if figure == "env":
        line = env(sizes)
        measured = line.get("bf16_matmul_xla_tflops")
      elif figure == "sft_mfu":
        line = sft_mfu(sizes, measured)
      else:
        model_path = model_path or random_model_dir(sizes.gen_model, folder)
        if figure == "ppo":
          line = ppo(sizes, model_path, args.dataset_dir)
        else:
          line = generation(sizes, model_path, args.dataset_dir,
                            4 if figure == "generation_beam4" else 1)
    except Exception as e:  # pylint: disable=broad-except
      traceback.print_exc()
      failures += 1
      line = {"error": f"{type(e).__name__}: {' '.join(str(e).split())[:400]}"}
    line = {"figure": figure, **line, "seconds": round(time.perf_counter() - start, 1),
            "dry_run": args.dry_run}
    text = json.dumps(line)
    print(text, flush=True)
    if args.out:
      with open(args.out, "a", encoding="utf-8") as f:
        f.write(text + "\n")
  if failures:
    print(f"error: {failures} of {len(wanted)} figures failed (lines with \"error\" above)")
  return 1 if failures else 0


if __name__ == "__main__":
  sys.exit(main())
