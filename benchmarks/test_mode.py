"""What a user waits for in batch evaluation: the whole `launch/test.py` process against two
PyTorch references (`original_loop.py`) on the same Hugging Face folder and rows, greedy,
`max_new_tokens` each:

- the original's loop (transformers, dataset order, each batch padded to its longest, a
  teacher-forced pass for perplexity, `generate`, the same text metrics): what a user of the
  original gains by switching (the headline `ratio`);
- a competent PyTorch loop (`inference_mode`, length-sorted batches, the encoder output reused
  by the perplexity pass and `generate`, the LM head only at target positions): what JAX
  itself gains (`competent_ratio`). The difference between the two is the algorithm's share.

Each repeat runs, in turn: the original-style loop; the competent loop; test.py with an empty
compilation cache (a first run); test.py again on that cache (a second run). Whole processes,
wall clock, imports and loading included. Before any figure is printed the outputs of every
run are asserted identical to the original-style loop's, and perplexity equal (test.py groups
its per-example losses into the loop's dataset-order batches).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import common as C
from benchmarks.common import BenchConfig, describe, pin_threads, report, spread


def _launcher() -> list[str]:
  """How to start test.py: the checkout's file next to the package, else the installed one."""
  here = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), "launch", "test.py")
  if os.path.exists(here):
    return [sys.executable, here]
  installed = shutil.which("test.py")
  if not installed:
    raise FileNotFoundError("launch/test.py is neither in a checkout nor on PATH")
  return [sys.executable, installed]


def _timed(cmd: list[str]) -> float:
  start = time.perf_counter()
  done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                        check=False)
  seconds = time.perf_counter() - start
  if done.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
  return seconds


def _test_dir_result(test_dir: str) -> dict:
  with open(os.path.join(test_dir, "test_data.json"), encoding="utf-8") as f:
    outputs = [row["output"] for row in json.load(f)]
  with open(os.path.join(test_dir, "test_metrics.json"), encoding="utf-8") as f:
    return {"outputs": outputs, "metrics": json.load(f)}


def _same_work(reference: dict, result: dict, label: str) -> None:
  ours, metrics = result["outputs"], result["metrics"]
  theirs = reference["outputs"]
  differ = sum(a != b for a, b in zip(ours, theirs)) + abs(len(ours) - len(theirs))
  if differ:
    raise AssertionError(f"{label}: {differ} of {len(theirs)} outputs differ from the "
                         f"original-style loop's; the comparison would not be of the same work")
  for key in ("ppl", "bleu", "dist-2", "avg_bow"):
    a, b = metrics[key], reference["metrics"][key]
    if abs(a - b) > 1e-4 * max(abs(b), 1e-12):
      raise AssertionError(f"{label}: {key} {a} differs from the loop's {b}")


def run(cfg: BenchConfig) -> dict:
  from empathy_jax.models.loading import export_hf, load_model  # pylint: disable=import-outside-toplevel

  cores = pin_threads()
  work = tempfile.mkdtemp(prefix="empathy_jax_bench_test_")
  try:
    loaded = load_model(C.model_path(cfg))
    hf_dir = os.path.join(work, "hf")
    export_hf(loaded, hf_dir)
    common = ["--max_examples", str(cfg.max_examples), "--batch_size", str(cfg.batch_size),
              "--max_new_tokens", str(cfg.max_new_tokens)]
    reference_out = os.path.join(work, "reference.json")
    competent_out = os.path.join(work, "competent.json")
    loop = [sys.executable, "-m", "benchmarks.original_loop", "--hf_dir", hf_dir,
            "--dataset_dir", cfg.dataset_dir, "--family", loaded.fmt.family, "--threads",
            str(cores)] + common
    reference = loop + ["--style", "original", "--out", reference_out]
    competent = loop + ["--style", "competent", "--out", competent_out]
    times: dict[str, list[float]] = {"original-style loop": [], "competent PyTorch loop": [],
                                     "test.py, first run": [], "test.py, warm cache": []}
    print(f"{cfg.model} exported to a Hugging Face folder; {cfg.max_examples} test rows, "
          f"batch {cfg.batch_size}, greedy, {cfg.max_new_tokens} new tokens; "
          f"{cfg.repeats} repeats")
    for r in range(cfg.repeats):
      cache = os.path.join(work, f"xla-cache-{r}")
      ours = _launcher() + ["--pretrained_model_dir", hf_dir, "--dataset_dir",
                            cfg.dataset_dir, "--beam_width", "1", "--nosample",
                            "--compilation_cache_dir", cache] + common
      times["original-style loop"].append(_timed(reference))
      with open(reference_out, encoding="utf-8") as f:
        reference_result = json.load(f)
      times["competent PyTorch loop"].append(_timed(competent))
      with open(competent_out, encoding="utf-8") as f:
        _same_work(reference_result, json.load(f), "competent PyTorch loop")
      for label, run_dir in (("test.py, first run", "first"), ("test.py, warm cache", "warm")):
        out_dir = os.path.join(work, f"{run_dir}-{r}")
        times[label].append(_timed(ours + ["--output_dir", out_dir]))
        _same_work(reference_result, _test_dir_result(out_dir), label)
      print(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()))
    print("same outputs, perplexity, BLEU, dist-2 and BOW as the original-style loop in every "
          "run: yes")
    for label, seconds in times.items():
      print(f"{label:>20}: {describe(seconds)}")
    base = spread(times["original-style loop"])["median"]
    first = spread(times["test.py, first run"])["median"]
    warm = spread(times["test.py, warm cache"])["median"]
    lean = spread(times["competent PyTorch loop"])["median"]
    print(f"speed-up over the original-style loop: first run {base / first:.2f}x, warm cache "
          f"{base / warm:.2f}x; over the competent loop: first run {lean / first:.2f}x, warm "
          f"cache {lean / warm:.2f}x")
    return report(cfg, "seconds (whole process)", first, base, {
        "ratio": round(base / first, 3), "warm_seconds": round(warm, 2),
        "warm_ratio": round(base / warm, 3), "competent_seconds": round(lean, 2),
        "competent_ratio": round(lean / first, 3),
        "competent_warm_ratio": round(lean / warm, 3), "rows": cfg.max_examples,
        "repeats": cfg.repeats, "times": {k: [round(x, 2) for x in v]
                                          for k, v in times.items()}})
  finally:
    shutil.rmtree(work, ignore_errors=True)
