"""Shared benchmark helpers: interleaved timing with median and range, pinned threads, the
torch twin of a model, both frameworks' measured matmul rates, the final JSON line."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import time
from typing import Callable

import numpy as np

from empathy_jax.settings import setting


MODES = ("test", "generation", "sft", "classifiers", "reward", "ppo", "dpo", "grpo", "tokenize")
# --batch_size when not given: what each mode measures at.
DEFAULT_BATCH = {"test": 32, "generation": 32, "sft": 8, "classifiers": 32, "reward": 8,
                 "ppo": 8, "dpo": 8, "grpo": 8, "tokenize": 512}


@dataclasses.dataclass(frozen=True)
class BenchConfig:
  """`launch/benchmark.py`'s settings (its flags are generated from these fields)."""

  mode: str = setting(help="What to measure: test = the whole test.py process vs the "
                      "original's loop; generation = tokens/s; sft = train steps; classifiers "
                      "= the metric classifiers; reward = reward-model train steps (rated "
                      "pairs/s); ppo = one PPO iteration (episodes/s, rollout/scoring/update "
                      "split); dpo = DPO train steps (preference pairs/s); tokenize = the "
                      "tf.data input path vs the default tokenizer "
                      "(examples/s).", choices=MODES)
  model: str = setting("GODEL_TINY", "Registry model (or checkpoint path).")
  batch_size: int | None = setting(None, "Batch size (default: 32 for test and generation, 8 "
                                   "for sft, reward, ppo, dpo and grpo (contexts), 32 for "
                                   "classifiers, 512 for tokenize).")
  beam_width: int = setting(1, "Beams for --mode generation.")
  max_new_tokens: int = setting(32, "New tokens for --mode test, generation, ppo and grpo.")
  repeats: int = setting(5, "Timed repetitions of each side, interleaved (median and range are "
                         "reported).")
  dataset_dir: str = setting("datasets/empathetic_dialogues", "Dataset whose test split gives "
                             "the inputs.")
  torch: bool = setting(True, "Also measure the PyTorch reference.")
  max_examples: int = setting(512, "Test rows for --mode test; contexts for --mode reward.")
  random_weights: bool = setting(False, "Build --model's published architecture (a registry "
                                 "name, e.g. GODEL_SMALL: GODEL-base's shapes) with random "
                                 "weights instead of loading it: no download.")

  def __post_init__(self):
    if not self.batch_size:  # None or 0: the mode's own
      object.__setattr__(self, "batch_size", DEFAULT_BATCH.get(self.mode, 32))
    if self.batch_size < 0 or self.repeats < 1:
      raise ValueError(f"--batch_size must be >= 0 and --repeats >= 1, got {self.batch_size} "
                       f"and {self.repeats}")


def timed(fn: Callable[[], object], repeats: int) -> float:
  """Median wall time of `repeats` runs after one warm-up (compile) run."""
  return float(np.median(interleaved({"x": fn}, repeats)["x"]))


def interleaved(sides: dict[str, Callable[[], object]], repeats: int,
                warmup: bool = True) -> dict[str, list[float]]:
  """Wall times of each side, `repeats` each, the sides taking turns (so that a slow phase of
  the machine hits both alike); one untimed warm-up call of each first."""
  if warmup:
    for fn in sides.values():
      fn()
  times: dict[str, list[float]] = {name: [] for name in sides}
  for _ in range(repeats):
    for name, fn in sides.items():
      start = time.perf_counter()
      fn()
      times[name].append(time.perf_counter() - start)
  return times


def spread(seconds: list[float]) -> dict[str, float]:
  """Median and range of a list of timings."""
  return {"median": float(np.median(seconds)), "min": float(np.min(seconds)),
          "max": float(np.max(seconds))}


def rates(times: dict[str, list[float]], work: float, unit: str) -> dict[str, float]:
  """Each side's `work` per median second, printed with its timings ("jax: median ..., 12.3
  pairs/s")."""
  out = {}
  for side, seconds in times.items():
    out[side] = work / spread(seconds)["median"]
    print(f"{side:>5}: {describe(seconds)}, {out[side]:.1f} {unit}")
  return out


def describe(seconds: list[float]) -> str:
  s = spread(seconds)
  return f"median {s['median']:.3f} s (range {s['min']:.3f}-{s['max']:.3f}, n={len(seconds)})"


def pin_threads() -> int:
  """Gives PyTorch as many intra-op threads as XLA:CPU uses (every core this process may run
  on) and prints both, so neither side is handicapped by its default."""
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  line = f"threads: XLA:CPU uses all {cores} cores"
  if torch_available():
    import torch  # pylint: disable=import-outside-toplevel

    torch.set_num_threads(cores)
    line += f"; torch.set_num_threads({cores}) (torch {torch.__version__})"
  print(line)
  print(f"cpu: {cpu_model()}")
  return cores


def cpu_model() -> str:
  """The CPU's model name, with its family and model numbers where the name alone is generic
  (a virtual machine's "AMD EPYC" may be any of several generations)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                  if ":" in line)
    info = {k.strip(): v.strip() for k, v in info.items()}
    if "model name" in info:
      return (f"{info['model name']} (family {info.get('cpu family', '?')}, model "
              f"{info.get('model', '?')})")
  except OSError:
    pass
  import platform  # pylint: disable=import-outside-toplevel

  return platform.processor() or "unknown"


def torch_available() -> bool:
  try:
    import torch  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return False
  return True


def torch_device() -> str:
  """Where the PyTorch side runs: the GPU when PyTorch sees one (as JAX then runs on it too),
  else the CPU."""
  import torch  # pylint: disable=import-outside-toplevel

  return "cuda" if torch.cuda.is_available() else "cpu"


def to_torch(x, dtype=None):
  """A host array as a tensor on the PyTorch side's device (int64 unless `dtype`)."""
  import torch  # pylint: disable=import-outside-toplevel

  return torch.from_numpy(np.array(x)).to(device=torch_device(), dtype=dtype or torch.long)


def torch_sync() -> None:
  """Waits for the PyTorch side's queued GPU work (its calls return before it finishes), so
  a timer read after it counts the work; nothing to wait for on the CPU."""
  import torch  # pylint: disable=import-outside-toplevel

  if torch.cuda.is_available():
    torch.cuda.synchronize()


def torch_response_logits(model, enc_dec: bool, c_ids, c_mask, r_ids, r_mask):
  """(logits, targets, mask) of responses `r_ids` to contexts `c_ids` (tensors padded to their
  longest) under transformers' LM: an encoder-decoder's every decoder position after the start
  token; a decoder-only model's response positions only, its hidden states sliced before the
  LM head (as ours project only the scored positions)."""
  import torch  # pylint: disable=import-outside-toplevel

  if enc_dec:
    logits = model(input_ids=c_ids, attention_mask=c_mask, decoder_input_ids=r_ids,
                   decoder_attention_mask=r_mask).logits[:, :-1]
    return logits, r_ids[:, 1:], r_mask[:, 1:]
  c = c_ids.shape[1]
  ids, mask = torch.cat([c_ids, r_ids], 1), torch.cat([c_mask, r_mask], 1)
  pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
  hidden = model.transformer(input_ids=ids, attention_mask=mask,
                             position_ids=pos).last_hidden_state
  return model.lm_head(hidden[:, c - 1:-1]), r_ids, r_mask


def jitted_pass(step, state, arrays):
  """(a callable running `step` over `arrays` from the held state and waiting for the last,
  the holder of the state): our side of a train-step mode."""
  import jax  # pylint: disable=import-outside-toplevel

  holder = {"state": state}

  def one_pass():
    s = holder["state"]
    for a in arrays:
      s, m = step(s, a)
    holder["state"] = jax.block_until_ready((s, m))[0]

  return one_pass, holder


@functools.cache
def model_path(cfg: BenchConfig) -> str:
  """What the mode loads: `cfg.model`, or with `--random_weights` a folder of its architecture
  with random weights (made once a process)."""
  if not cfg.random_weights:
    return cfg.model
  return random_model_dir(cfg.model, tempfile.mkdtemp(prefix="empathy_jax_bench_"))


def random_model_dir(name: str, folder: str) -> str:
  """A model folder with `name`'s published architecture and random weights (float32)."""
  from empathy_jax import planning, registry  # pylint: disable=import-outside-toplevel
  from empathy_jax.models import loading, model_dir  # pylint: disable=import-outside-toplevel

  spec = registry.get_model_spec(name)
  hf = {k: v for k, v in planning.architecture(name).items() if k != "vocab_size"}
  spec = dataclasses.replace(spec, hub_name=None, weights=None, config=hf,
                             name=f"{name} (random)")
  path = os.path.join(folder, f"{name}_random")
  model_dir.save(loading.from_spec(spec), path)
  print(f"{name}: its architecture with random weights in {path}")
  return path


def torch_twin(loaded, lm_head: bool = True):
  """The same weights in transformers' PyTorch class (via our HF export), on the PyTorch
  side's device; `lm_head=False`: the bare backbone (`AutoModel`, last hidden states), as value
  and reward heads read it."""
  import transformers  # pylint: disable=import-outside-toplevel

  from empathy_jax.models.loading import export_hf  # pylint: disable=import-outside-toplevel

  tmp = tempfile.mkdtemp(prefix="empathy_jax_bench_")
  export_hf(loaded, tmp)
  if not lm_head:
    return transformers.AutoModel.from_pretrained(tmp).to(torch_device()).eval()
  cls = (transformers.AutoModelForSeq2SeqLM if loaded.model.is_encoder_decoder
         else transformers.AutoModelForCausalLM)
  return cls.from_pretrained(tmp).to(torch_device()).eval()


def report(cfg: BenchConfig, unit: str, jax_value: float, torch_value: float | None,
           extra: dict | None = None) -> dict:
  """Prints and returns the final JSON line (values from median timings)."""
  model = f"{cfg.model} (random weights)" if cfg.random_weights else cfg.model
  result = {"mode": cfg.mode, "model": model, "unit": unit, "jax": round(jax_value, 2),
            "torch": None if torch_value is None else round(torch_value, 2),
            "ratio": None if not torch_value else round(jax_value / torch_value, 3),
            "cpu": cpu_model()}
  result.update(extra or {})
  print(json.dumps(result))
  return result


def trim_padding(ids_BxL, mask_BxL, left: bool):
  """A batch padded to its longest example (`padding=True`), as a transformers user pads: the
  bucket's all-padding columns dropped."""
  ids, mask = np.asarray(ids_BxL), np.asarray(mask_BxL)
  longest = max(int(mask.sum(1).max()), 1)
  return (ids[:, -longest:], mask[:, -longest:]) if left else (ids[:, :longest],
                                                               mask[:, :longest])


def test_batch(loaded, cfg: BenchConfig, n: int | None = None):
  """A batch of real test contexts in the model's format."""
  from empathy_jax.data.dialogue_dataset import load_dialogue_split  # pylint: disable=import-outside-toplevel
  from empathy_jax.data.pipeline import make_batcher, tokenize_split  # pylint: disable=import-outside-toplevel

  n = n or cfg.batch_size
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "test"), 1.0).select(range(n))
  table = tokenize_split(split, loaded.fmt)
  return next(make_batcher(loaded.fmt, n).batches(table))


def realistic_batches(loaded, cfg: BenchConfig, count: int = 4):
  """`count` of the batches `test.py` makes from the whole test split (its length-sorted
  order), evenly spaced from the longest to the shortest."""
  from empathy_jax.data.dialogue_dataset import load_dialogue_split  # pylint: disable=import-outside-toplevel
  from empathy_jax.data.pipeline import tokenize_split  # pylint: disable=import-outside-toplevel

  from empathy_jax.evaluation.testing import eval_batcher  # pylint: disable=import-outside-toplevel

  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "test"), 1.0)
  table = tokenize_split(split, loaded.fmt)
  batcher = eval_batcher(loaded.fmt, cfg.batch_size, table)
  indices = batcher.batch_indices(table)
  full = [i for i in indices if len(i) == cfg.batch_size]
  picks = np.linspace(0, len(full) - 1, count).round().astype(int)
  out = []
  for p in picks:
    rows = table[full[p].tolist()]
    out.append(batcher.make_batch(rows["context_ids"], rows["target_ids"], full[p].tolist()))
  return out


def torch_matmul_flops_per_second(size: int = 1024, repeats: int = 5) -> float | None:
  """PyTorch's measured fp32 matmul rate on this machine (beside XLA's)."""
  if not torch_available():
    return None
  import torch  # pylint: disable=import-outside-toplevel

  a = torch.from_numpy(np.random.default_rng(0).normal(size=(size, size)).astype(np.float32))
  seconds = timed(lambda: a @ a, repeats)
  return 2 * size ** 3 / seconds


def matmul_rates() -> tuple[float, float | None]:
  """(XLA, torch) fp32 matmul FLOP/s, printed."""
  xla, torch_rate = matmul_flops_per_second(), torch_matmul_flops_per_second()
  line = f"fp32 1024^3 matmul: XLA {xla / 1e9:.0f} GFLOP/s"
  if torch_rate:
    line += f", torch {torch_rate / 1e9:.0f} GFLOP/s"
  print(line)
  return xla, torch_rate


def matmul_flops_per_second(size: int = 1024, repeats: int = 5) -> float:
  """This machine's measured fp32 matmul rate through XLA (the roofline for the fractions)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  seconds = timed(lambda: f(a).block_until_ready(), repeats)
  return 2 * size ** 3 / seconds


# -- the roofline beside the ratio -------------------------------------------------------------

PROBES = ("matmul_1024", "matmul_model")


def matmul_probes(model_shape: tuple[int, int, int]) -> dict[str, Callable[[], object]]:
  """Two more sides for `interleaved`: XLA's fp32 matmul at 1024^3 and at the model's own
  largest matmul ([M, K] @ [K, N]: `model_shape`), timed in turn with the mode's repeats so
  the rate is measured in the same phase of the machine as the figures."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  rng = np.random.default_rng(0)
  probes = {}
  for name, (m, k, n) in zip(PROBES, ((1024, 1024, 1024), model_shape)):
    a = jnp.asarray(rng.normal(size=(m, k)), jnp.float32)
    b = jnp.asarray(rng.normal(size=(k, n)), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    probes[name] = functools.partial(lambda f, a, b: f(a, b).block_until_ready(), f, a, b)
  return probes


def xla_flops(compiled) -> float:
  """XLA's FLOP count of a compiled (or lowered) program: its cost analysis, in which a loop's
  body counts once."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0))


def roofline(times: dict[str, list[float]], flops: float, model_shape: tuple[int, int, int],
             seconds: float | None = None) -> dict:
  """The JSON line's roofline fields, printed: the work (`flops`, XLA's count of the timed
  pass), our achieved rate (over `seconds`, by default the jax side's median), and the two
  matmul rates measured beside the repeats (`matmul_probes`' medians), with our fraction of
  each. Pops the probes' times from `times`."""
  probe = {name: spread(times.pop(name))["median"] for name in PROBES}
  m, k, n = model_shape
  rate_1024 = 2 * 1024 ** 3 / probe["matmul_1024"]
  rate_model = 2 * m * k * n / probe["matmul_model"]
  achieved = flops / (seconds if seconds is not None else spread(times["jax"])["median"])
  print(f"roofline: {flops / 1e9:.1f} GFLOP (XLA's count) at {achieved / 1e9:.0f} GFLOP/s; "
        f"XLA's fp32 matmul beside the repeats: {rate_1024 / 1e9:.0f} GFLOP/s at 1024^3 "
        f"({achieved / rate_1024:.0%} of it), {rate_model / 1e9:.0f} GFLOP/s at the model's "
        f"{m}x{k}x{n} ({achieved / rate_model:.0%})")
  return {"gflop": round(flops / 1e9, 2), "achieved_gflops": round(achieved / 1e9, 1),
          "matmul_1024_gflops": round(rate_1024 / 1e9, 1),
          "matmul_model_gflops": round(rate_model / 1e9, 1),
          "matmul_model_shape": list(model_shape),
          "fraction_of_matmul_1024": round(achieved / rate_1024, 3),
          "fraction_of_matmul_model": round(achieved / rate_model, 3)}


def lm_head_shape(model, rows: int) -> tuple[int, int, int]:
  """The largest matmul of a step that projects `rows` positions onto the vocabulary."""
  return rows, model.hidden_size, model.cfg.vocab_size


def ffn_shape(model, rows: int) -> tuple[int, int, int]:
  """The largest matmul of a step without an LM head: a feed-forward layer over `rows`."""
  cfg = model.cfg
  width = (getattr(cfg, "d_ff", None) or getattr(cfg, "n_inner", None)
           or getattr(cfg, "encoder_ffn_dim", None))
  return rows, model.hidden_size, width
