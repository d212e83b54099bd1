"""Shared benchmark helpers: timing, the torch twin of a model, the final JSON line."""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  mode: str
  model: str
  batch_size: int = 32
  beam_width: int = 1
  max_new_tokens: int = 32
  repeats: int = 3
  dataset_dir: str = "datasets/empathetic_dialogues"
  torch: bool = True


def timed(fn: Callable[[], object], repeats: int) -> float:
  """Best wall time of `repeats` runs after one warm-up (compile) run."""
  fn()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def torch_available() -> bool:
  try:
    import torch  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return False
  return True


def torch_twin(loaded):
  """The same weights in transformers' PyTorch class (via our HF export)."""
  import transformers  # pylint: disable=import-outside-toplevel

  from empathy_jax.models.loading import export_hf  # pylint: disable=import-outside-toplevel

  tmp = tempfile.mkdtemp(prefix="empathy_jax_bench_")
  export_hf(loaded, tmp)
  cls = (transformers.AutoModelForSeq2SeqLM if loaded.model.is_encoder_decoder
         else transformers.AutoModelForCausalLM)
  return cls.from_pretrained(tmp).eval()


def report(cfg: BenchConfig, unit: str, jax_value: float, torch_value: float | None,
           extra: dict | None = None) -> dict:
  result = {"mode": cfg.mode, "model": cfg.model, "unit": unit, "jax": round(jax_value, 2),
            "torch": None if torch_value is None else round(torch_value, 2),
            "ratio": None if not torch_value else round(jax_value / torch_value, 3)}
  result.update(extra or {})
  print(json.dumps(result))
  return result


def test_batch(loaded, cfg: BenchConfig, n: int | None = None):
  """A batch of real test contexts in the model's format."""
  from empathy_jax.data.dialogue_dataset import load_dialogue_split  # pylint: disable=import-outside-toplevel
  from empathy_jax.data.pipeline import make_batcher, tokenize_split  # pylint: disable=import-outside-toplevel

  n = n or cfg.batch_size
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "test"), 1.0).select(range(n))
  table = tokenize_split(split, loaded.fmt)
  return next(make_batcher(loaded.fmt, n).batches(table))


def matmul_flops_per_second(size: int = 1024, repeats: int = 5) -> float:
  """This machine's measured fp32 matmul rate through XLA (the roofline for the fractions)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  seconds = timed(lambda: f(a).block_until_ready(), repeats)
  return 2 * size ** 3 / seconds
