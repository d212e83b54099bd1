"""`--mode tokenize`: tokenized examples per second of the two input paths on a test split --
the default (transformers' fast tokenizer through `GodelFormat`, the table `tokenize_split`
builds) and tf.data with in-graph SentencePiece (`data.tfdata`), both making the same context
and target ids (asserted) for the same rows; interleaved repeats, median and range. tf.data is
timed twice: a pass over a pipeline built once (a TPU host's steady state) and a pass that
builds the pipeline first (tracing the graph, loading SentencePiece: what a launcher pays once
per split)."""

from __future__ import annotations

import os

from benchmarks.common import BenchConfig, describe, interleaved, pin_threads, report, spread
from empathy_jax.data import tfdata
from empathy_jax.data.dialogue_dataset import load_dialogue_split
from empathy_jax.models.loaded import format_for


def run(cfg: BenchConfig) -> dict:
  pin_threads()
  split = load_dialogue_split(os.path.join(cfg.dataset_dir, "test"), 0.0)
  split = split.select(range(min(cfg.max_examples, len(split))))
  fmt = format_for("godel", "package:godel", 512)
  tfdata.require_tf()

  def python_path():
    contexts = fmt.encode_contexts(split.contexts, split.instructions, split.knowledge)
    return contexts, fmt.encode_targets(split.targets)

  def tfdata_with_build():
    return list(tfdata.iterate(split, fmt, batch_size=cfg.batch_size))

  built = tfdata.examples(split, fmt, batch_size=cfg.batch_size)

  def tfdata_path():
    return list(built.as_numpy_iterator())

  problems = tfdata.compare(split, fmt, tfdata_path())
  assert not problems, problems[:3]
  times = interleaved({"tfdata": tfdata_path, "python": python_path,
                       "tfdata, building the pipeline": tfdata_with_build}, cfg.repeats)
  n = len(split)
  for name, seconds in times.items():
    print(f"{name}: {n} examples, {describe(seconds)}, {n / spread(seconds)['median']:.0f} "
          f"examples/s")
  ours, theirs = (n / spread(times[k])["median"] for k in ("tfdata", "python"))
  return report(cfg, "examples/s", ours, theirs,
                {"examples": n, "tfdata_seconds": spread(times["tfdata"]),
                 "python_seconds": spread(times["python"]),
                 "tfdata_with_build_seconds": spread(times["tfdata, building the pipeline"]),
                 "note": "torch column = the default (python) path"})
