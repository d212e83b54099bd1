"""`launch/test.py`: generate on a test split in jitted batches and score it like the original.

Writes test_data.json (id, input, context, target, output and every per-example score),
test_metrics.json and classwise_test_metrics.json to --output_dir (default: the model's folder
for a local checkpoint, else outputs/<model>), and returns the metrics.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import numpy as np

from empathy_jax import preflight, sharding
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.data.pipeline import make_batcher, tokenize_split
from empathy_jax.evaluation import suite
from empathy_jax.evaluation import text_metrics as T
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate_ids
from empathy_jax.models.loading import load_model
from empathy_jax.models.packing import encoder_plan
from empathy_jax.training.loss import batch_nll
from empathy_jax.training.metrics_log import progress


@dataclasses.dataclass(frozen=True)
class TestConfig:
  """Flags of the original's `test`, plus --max_examples and the mesh."""

  dataset_dir: str
  model: str | None = None
  pretrained_model_dir: str | None = None
  output_dir: str | None = None
  scores: suite.ScoreConfig = suite.ScoreConfig()
  batch_size: int = 32
  data_erasure_level: float = 1.0
  max_examples: int | None = None
  split: str = "test"
  generation: dict = dataclasses.field(default_factory=dict)  # only the flags the user gave
  seed: int = 0
  mesh: sharding.MeshConfig = sharding.MeshConfig()
  trust_pickle: bool = False

  def __post_init__(self):
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

  def out_dir(self) -> str:
    if self.output_dir:
      return self.output_dir
    if self.pretrained_model_dir and os.path.isdir(self.pretrained_model_dir):
      return self.pretrained_model_dir
    name = (self.model or self.pretrained_model_dir).replace("/", "_")
    return os.path.join("outputs", name)


def run_test(cfg: TestConfig) -> dict:
  """Generates on the split, scores it, writes the three result files (process 0) and returns
  the metrics. Multi-host: every process runs it with the same flags."""
  cfg.check_inputs()
  loaded = load_model(cfg.model or cfg.pretrained_model_dir, trust_pickle=cfg.trust_pickle)
  fmt, model = loaded.fmt, loaded.model
  split = load_dialogue_split(split_dir(cfg.dataset_dir, cfg.split), cfg.data_erasure_level)
  if cfg.max_examples is not None:
    split = split.select(range(min(cfg.max_examples, len(split))))
  table = tokenize_split(split, fmt)
  batcher = make_batcher(fmt, cfg.batch_size)  # sorted by length: little padding
  mesh = sharding.make_mesh(cfg.mesh)
  params = sharding.shard_tree(loaded.params, sharding.param_shardings(model, mesh))
  loss_fn = jax.jit(functools.partial(batch_nll, model))
  rng = jax.random.PRNGKey(cfg.seed)

  n = len(split)
  outputs: list[str | None] = [None] * n
  output_ids: list[list[int]] = [[] for _ in range(n)]
  inputs: list[str] = [""] * n
  batch_losses = []
  bar = progress(batcher.num_batches(n), 0, "testing")

  def collect(batch, out):
    """Host side of a finished batch: decoded outputs and inputs."""
    tokens, mask = sharding.to_host((out.tokens_BxN, out.mask_BxN))
    for row, idx in enumerate(batch.example_index_B.tolist()):
      if idx < 0:
        continue
      ids = tokens[row][mask[row] == 1]
      output_ids[idx] = ids[ids != fmt.pad_id].tolist()
      outputs[idx] = fmt.decode(ids.tolist()).strip()
      real = batch.context_ids_BxC[row][batch.context_mask_BxC[row] == 1]
      inputs[idx] = fmt.decode(real, skip_special_tokens=False)
    bar.update(1)

  pending = None  # the previous batch, collected once the next one is dispatched
  for batch in batcher.batches(table):  # every process holds the whole global batch
    arrays = sharding.from_host({k: getattr(batch, k) for k in (
        "context_ids_BxC", "context_mask_BxC", "target_ids_BxT", "target_mask_BxT")},
                                sharding.batch_sharding(mesh, 2))
    rows, plan = sharding.replicate((np.maximum(batch.example_index_B, 0),
                                     encoder_plan(model, batch.context_mask_BxC)), mesh)
    gen = resolve(cfg.generation, loaded.generation_config, model.cfg,
                  prompt_length=batch.context_ids_BxC.shape[1])
    out = generate_ids(model, params, arrays["context_ids_BxC"], arrays["context_mask_BxC"],
                       gen, rng, rows, plan)
    batch_losses.append(loss_fn(params, arrays))
    if pending is not None:
      collect(*pending)
    pending = (batch, out)
  if pending is not None:
    collect(*pending)
  bar.close()
  # ppl as the original: exp of the mean over test batches of the batch's mean token loss.
  means = [float(s) / float(c) for s, c in sharding.to_host(batch_losses) if float(c) > 0]
  ppl = float(np.exp(np.mean(means))) if means else float("nan")
  target_ids = [[i for i in row if i != fmt.pad_id] for row in table["target_ids"]]
  bow = T.bow_similarity(np.asarray(model.input_embeddings(loaded.params)), output_ids,
                         target_ids)
  examples = [{"id": i, "input": inputs[i], "context": split.contexts[i],
               "target": split.targets[i], "output": outputs[i]} for i in range(n)]
  records, metrics, classwise = suite.score(examples, cfg.scores, bow=bow, ppl=ppl)
  if jax.process_index() == 0:
    suite.write_results(cfg.out_dir(), records, metrics, classwise)
  return metrics
