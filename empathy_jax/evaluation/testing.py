"""`launch/test.py`: generate on a test split in jitted batches and score it like the original.

Writes test_data.json (id, input, context, target, output and every per-example score),
test_metrics.json and classwise_test_metrics.json to --output_dir (default: the model's folder
for a local checkpoint, else outputs/<model>), and returns the metrics.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import compilation, preflight, ranges, sharding
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.data.pipeline import (DEFAULT_BUCKETS, Batcher, bucket_length, make_batcher,
                                       tokenize_split)
from empathy_jax.evaluation import results, suite
from empathy_jax.evaluation import text_metrics as T
from empathy_jax.evaluation import batch_program
from empathy_jax.generation.config import resolve
from empathy_jax.models.loading import load_model
from empathy_jax.settings import setting
from empathy_jax.training.metrics_log import progress


# Context lengths test.py pads to: finer than training's powers of two (a batch of contexts up
# to 329 tokens pads to 384, not 512), since an evaluation compiles each once and the persistent
# cache keeps them; the programs compile ahead in the background.
EVAL_BUCKETS = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)
# Encoder-decoder batches decode at a width that holds their bucket, shared by several buckets
# (`batch_program.encode_for_decoding`): one decoding program per width instead of per bucket.
# Each decoding step reads every padded cross-attention key, so padding a batch to the next
# width costs ~0.1-0.15 s (GODEL_TINY, 32 rows, 32 tokens), about what compiling a decoding
# program costs (~3 s) once 24 batches pay it: a bucket that many batches use keeps its own.
DECODE_WIDTHS = (128, 256, 512, 1024)
OWN_WIDTH_BATCHES = 24
# Batches whose programs run at once on a single-process CPU run (`in_flight`).
IN_FLIGHT = 2


def decode_widths(batch_buckets: Sequence[int]) -> tuple[int, ...]:
  """The widths a run's encoder-decoder batches decode at, from each batch's context bucket:
  DECODE_WIDTHS capped at the run's longest bucket, and every bucket that at least
  OWN_WIDTH_BATCHES batches use."""
  counts = collections.Counter(batch_buckets)
  longest = max(counts)
  widths = {min(w, longest) for w in DECODE_WIDTHS} | {longest}
  return tuple(sorted(widths | {c for c, n in counts.items() if n >= OWN_WIDTH_BATCHES}))


def decode_width(bucket: int, widths: Sequence[int]) -> int:
  """The smallest of `widths` (`decode_widths`) that holds the bucket."""
  return next(w for w in widths if w >= bucket)


def in_flight(batches, dispatch, fetch, threads: int | None = None):
  """Yields (batch, fetch(dispatch(batch))) in order, with the device kept busy.

  On a single-process CPU run, `threads` (default IN_FLIGHT) batches are in flight, each
  dispatched and fetched from its own thread: XLA:CPU then runs their programs side by side,
  and the small per-step ops of one fill the cores that the other leaves idle (from one
  thread, dispatched programs run one after another). Elsewhere one batch is dispatched ahead
  of the one being fetched: accelerators queue programs anyway, and every process of a
  multi-host run launches them in the same order."""
  if threads is None:
    threads = IN_FLIGHT if jax.default_backend() == "cpu" and jax.process_count() == 1 else 1
  if threads > 1:
    pool = concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="test-batch")
    try:
      yield from zip(batches, pool.map(lambda batch: fetch(dispatch(batch)), batches))
    finally:
      pool.shutdown(cancel_futures=True)  # after an error, batches not started never run
    return
  pending = None
  for batch in batches:
    out = dispatch(batch)
    if pending is not None:
      yield pending[0], fetch(pending[1])
    pending = (batch, out)
  if pending is not None:
    yield pending[0], fetch(pending[1])


def eval_batcher(fmt, batch_size: int, table) -> Batcher:
  """test.py's batcher for a tokenized split: contexts in EVAL_BUCKETS, every target padded
  to one length (the scoring loop stops at each batch's longest), the whole split sorted by
  context bucket and then target length (little padding on either side)."""
  longest_target = max((len(t) for t in table["target_ids"]), default=1)
  return make_batcher(fmt, batch_size, EVAL_BUCKETS, by_context_bucket=True,
                      target_length=bucket_length(longest_target, DEFAULT_BUCKETS,
                                                  fmt.max_length))


@dataclasses.dataclass(frozen=True)
class TestConfig:
  """Flags of the original's `test`, plus --max_examples and the mesh."""

  dataset_dir: str = setting(help="Dialogue dataset folder.")
  model: str | None = None
  pretrained_model_dir: str | None = None
  output_dir: str | None = setting(None, "Where results go (default: the model folder).")
  scores: suite.ScoreConfig = suite.ScoreConfig()
  batch_size: int = setting(32, "Generation/scoring batch size.")
  data_erasure_level: float = setting(1.0, "Erased fraction of instructions.")
  max_examples: int | None = setting(None, "Score only the first N rows.")
  split: str = setting("test", "Split to evaluate.")
  generation: dict = dataclasses.field(default_factory=dict)  # only the flags the user gave
  seed: int = setting(0, "Sampling seed.")
  mesh: sharding.MeshConfig = sharding.MeshConfig()
  trust_pickle: bool = False
  overwrite: bool = False

  def __post_init__(self):
    ranges.check(self)
    for name, value in self.generation.items():  # the generation flags the user gave
      if value is not None and name in ranges.RANGES:
        ranges.check_value(name, value)
    if (self.model is None) == (self.pretrained_model_dir is None):
      raise ValueError("give exactly one of --model or --pretrained_model_dir")
    if self.batch_size < 1:
      raise ValueError(f"--batch_size must be >= 1, got {self.batch_size}")
    if not os.path.isdir(self.dataset_dir):
      raise ValueError(f"--dataset_dir {self.dataset_dir!r} does not exist")
    if self.model is not None:
      preflight.check_registry_name(self.model)

  def check_inputs(self) -> None:
    """The dataset split, the model, every metric folder and the output folder, checked
    before the model is loaded."""
    preflight.check_dialogue_dataset(self.dataset_dir, (self.split,))
    preflight.check_model_source(self.model or self.pretrained_model_dir)
    self.scores.check()
    preflight.check_writable(self.out_dir())
    results.check_free(self.out_dir(), self.provenance(), self.overwrite)

  def provenance(self) -> dict:
    """What makes two test runs' results the same: the model and every setting that changes
    the numbers (not the mesh, the output folder or --overwrite)."""
    source = self.model or os.path.abspath(self.pretrained_model_dir)
    settings = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("model", "pretrained_model_dir", "output_dir", "mesh",
                                  "overwrite", "trust_pickle")}
    settings["dataset_dir"] = os.path.abspath(self.dataset_dir)
    settings["scores"] = dataclasses.asdict(self.scores)
    return results.provenance("test.py", model=source, settings=settings)

  def out_dir(self) -> str:
    if self.output_dir:
      return self.output_dir
    if self.pretrained_model_dir and os.path.isdir(self.pretrained_model_dir):
      return self.pretrained_model_dir
    name = (self.model or self.pretrained_model_dir).replace("/", "_")
    return os.path.join("outputs", name)


def original_perplexity(nll_N, count_N, batch_size: int) -> float:
  """The original's perplexity: exp of the mean, over its test batches (the split in dataset
  order, `batch_size` rows each), of each batch's mean token loss; batches without a scored
  token are left out. From per-example summed losses and token counts, so that our batches
  (sorted by length) give the original's number."""
  nll, count = np.asarray(nll_N, np.float64), np.asarray(count_N, np.float64)
  means = [nll[s:s + batch_size].sum() / count[s:s + batch_size].sum()
           for s in range(0, len(nll), batch_size) if count[s:s + batch_size].sum() > 0]
  return float(np.exp(np.mean(means))) if means else float("nan")


def run_test(cfg: TestConfig) -> dict:
  """Generates on the split, scores it, writes the three result files (process 0) and returns
  the metrics. Multi-host: every process runs it with the same flags.

  One jitted program per context-length bucket does a batch's generation and its targets'
  log-likelihood (`batch_program.generate_and_score`); the programs are compiled in a
  background thread ahead of the batches that need them (or loaded from the persistent
  compilation cache)."""
  cfg.check_inputs()
  metric_imports = T.import_in_background()
  loaded = load_model(cfg.model or cfg.pretrained_model_dir, trust_pickle=cfg.trust_pickle)
  fmt, model = loaded.fmt, loaded.model
  split = load_dialogue_split(split_dir(cfg.dataset_dir, cfg.split), cfg.data_erasure_level)
  if cfg.max_examples is not None:
    split = split.select(range(min(cfg.max_examples, len(split))))
  table = tokenize_split(split, fmt)
  n = len(split)
  batches = list(eval_batcher(fmt, cfg.batch_size, table).batches(table))
  mesh = sharding.make_mesh(cfg.mesh)
  params = sharding.shard_tree(loaded.params, sharding.param_shardings(model, mesh))
  rng = jax.random.PRNGKey(cfg.seed)
  data_sharding, rows_sharding = sharding.batch_sharding(mesh, 2), sharding.replicated(mesh)
  gen_cfg = lambda width: resolve(cfg.generation, loaded.generation_config, model.cfg,
                                  prompt_length=width)
  spec = lambda shape, sh, dtype=jnp.int32: jax.ShapeDtypeStruct(shape, dtype, sharding=sh)
  # Encoder-decoder: the contexts' encoding (per bucket) and the decoding (per width) are two
  # programs; padded contexts would change encoder-side n-gram bans, so those runs keep one.
  split_programs = (model.is_encoder_decoder
                    and gen_cfg(0).encoder_no_repeat_ngram_size == 0)
  widths = decode_widths([batch.shape_key[1] for batch in batches]) if batches else ()

  def keys(batch):
    """The programs a batch runs, in order: ("encode", b, c, width), then ("decode", b,
    width, t), or ("decode", b, c, t) alone."""
    b, c, t = batch.shape_key
    if not split_programs:
      return [("decode", b, c, t)]
    width = decode_width(c, widths)
    return [("encode", b, c, width), ("decode", b, width, t)]

  def cross_spec(b, c):
    states = jax.ShapeDtypeStruct((b, c, model.hidden_size), jnp.float32)
    cross = jax.eval_shape(model.cross_cache, params, states)
    return jax.tree.map(lambda x, sh: spec(x.shape, sh, x.dtype), cross,
                        batch_program.cross_cache_shardings(cross, mesh))

  def lower(key):
    kind, b, c, t = key
    if kind == "encode":
      return batch_program.encode_for_decoding.lower(
          model, params, spec((b, c), data_sharding), spec((b, c), data_sharding), t,
          gen_cfg(c).pad_token_id, mesh)
    return batch_program.generate_and_score.lower(
        model, params, spec((b, c), data_sharding), spec((b, c), data_sharding),
        spec((b, t), data_sharding), spec((b, t), data_sharding), gen_cfg(c), rng,
        spec((b,), rows_sharding), cross_spec(b, c) if split_programs else None)

  programs = compilation.CompileAhead(lower, [key for batch in batches for key in keys(batch)])
  outputs: list[str | None] = [None] * n
  output_ids: list[list[int]] = [[] for _ in range(n)]
  inputs: list[str] = [""] * n
  nll, count = np.zeros(n), np.zeros(n)
  bar = progress(len(batches), 0, "testing")

  def dispatch(batch):
    """Starts a batch's programs; returns their outputs (device arrays, not awaited)."""
    arrays = sharding.from_host(
        [batch.context_ids_BxC, batch.context_mask_BxC, batch.target_ids_BxT,
         batch.target_mask_BxT], data_sharding)
    rows = sharding.replicate(np.maximum(batch.example_index_B, 0), mesh)
    contexts, targets, cross = arrays[:2], arrays[2:], None
    if split_programs:
      cross, *contexts = programs.get(keys(batch)[0])(params, *contexts)
    gen, batch_nll, batch_count = programs.get(keys(batch)[-1])(params, *contexts, *targets,
                                                                 rng, rows, cross)
    return gen.tokens_BxN, gen.mask_BxN, batch_nll, batch_count

  def collect(batch, out):
    """Host side of a finished batch: decoded outputs, inputs and target log-likelihoods."""
    tokens, mask, batch_nll, batch_count = out
    for row, idx in enumerate(batch.example_index_B.tolist()):
      if idx < 0:
        continue
      ids = tokens[row][mask[row] == 1]
      output_ids[idx] = ids[ids != fmt.pad_id].tolist()
      outputs[idx] = fmt.decode(ids.tolist()).strip()
      real = batch.context_ids_BxC[row][batch.context_mask_BxC[row] == 1]
      inputs[idx] = fmt.decode(real, skip_special_tokens=False)
      nll[idx], count[idx] = batch_nll[row], batch_count[row]
    bar.update(1)

  try:
    with contextlib.closing(in_flight(batches, dispatch, sharding.to_host)) as done:
      for batch, out in done:
        collect(batch, out)
  finally:
    programs.close()
  bar.close()
  ppl = original_perplexity(nll, count, cfg.batch_size)
  metric_imports.join()
  target_ids = [[i for i in row if i != fmt.pad_id] for row in table["target_ids"]]
  bow = T.bow_similarity(np.asarray(model.input_embeddings(loaded.params)), output_ids,
                         target_ids)
  examples = [{"id": i, "input": inputs[i], "context": split.contexts[i],
               "target": split.targets[i], "output": outputs[i]} for i in range(n)]
  records, metrics, classwise = suite.score(examples, cfg.scores, bow=bow, ppl=ppl)
  if jax.process_index() == 0:
    results.write(cfg.out_dir(), records, metrics, classwise, cfg.provenance())
  return metrics
