"""The metric suite: scores (context, target, output) examples as the original's `test` does and
writes `test_data.json`, `test_metrics.json`, `classwise_test_metrics.json` with its keys.

Classifier families whose directory is not given are skipped with a warning (as the original);
a given directory that is missing or incomplete is an error naming the missing file.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from empathy_jax.errors import DatasetError, Problem
from empathy_jax.evaluation import metrics as M, results, text_metrics as T
from empathy_jax.evaluation.metrics import RewardFn
from empathy_jax.json_files import read_dict
from empathy_jax.models import reward_model
from empathy_jax.models.loading import load_model, source_kind
from empathy_jax.settings import setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class ScoreConfig:
  """The metric suite's settings: a folder per metric that needs a model (`metrics.SUITE`'s
  sources; a test checks they agree), the n-gram order, and the launcher's batch size and
  pickle trust."""

  emo_classifier_dir: str | None = setting(None, "Emotion classifier folder (a transformers "
                                           "classifier, e.g. launch/train_classifier.py's "
                                           "export).")
  intent_classifier_dir: str | None = setting(None, "Empathetic-intent classifier folder.")
  epitome_dir: str | None = setting(None, "Folder with finetuned_{IP,EX,ER}.pth.")
  reward_model_dir: str | None = setting(None, "Reward model (reward statistics).")
  metric_n_grams: int = setting(4, "n for BLEU, NIST and dist-1..n.")
  batch_size: int = 32
  trust_pickle: bool = False  # full pickle for training_args.bin (runs the file's code)

  def check(self) -> None:
    """Checks every given folder before any heavy work (raises `CheckpointError`)."""
    for metric in M.SUITE:
      if metric.source and getattr(self, metric.source):
        metric.check_source(getattr(self, metric.source))


def reward_scorer(reward_model_dir: str, batch_size: int = 32,
                  trust_pickle: bool = False) -> RewardFn:
  """The jitted batched scorer of a reward model (`mean_offset` subtracted)."""
  return reward_model.load_scorer(reward_model_dir, batch_size, trust_pickle)


def read_test_data(path: str) -> list[dict]:
  """Reads a test_data.json (id, context, target, output per example), checking every row."""
  try:
    with open(path, encoding="utf-8") as f:
      rows = json.load(f)
  except FileNotFoundError as e:
    raise DatasetError([Problem(path, None, "file is missing")]) from e
  except json.JSONDecodeError as e:
    raise DatasetError([Problem(path, None, f"invalid JSON: {e}")]) from e
  if not isinstance(rows, list):
    raise DatasetError([Problem(path, None, "expected a list of examples")])
  if not rows:
    raise DatasetError([Problem(path, None, "has no examples (an empty list): nothing to score")])
  problems = []
  for i, row in enumerate(rows):
    if not isinstance(row, dict):
      problems.append(Problem(path, i, "example must be an object"))
      continue
    if "output" not in row and "prediction" in row:  # the original's earlier field name
      row["output"] = row["prediction"]
    for key in ("context", "target", "output"):
      if key not in row:
        problems.append(Problem(path, i, f"missing field {key!r}"))
    ctx = row.get("context")
    if isinstance(ctx, str):
      row["context"] = [ctx]
    elif not (isinstance(ctx, list) and ctx and all(isinstance(t, str) for t in ctx)):
      problems.append(Problem(path, i, "context must be a non-empty list of strings"))
    for key in ("target", "output"):
      if key in row and not isinstance(row[key], str):
        problems.append(Problem(path, i, f"{key} must be a string"))
    row.setdefault("id", i)
  if problems:
    raise DatasetError(problems)
  return rows


def score(examples: list[dict], cfg: ScoreConfig, *, bow: dict[str, np.ndarray] | None = None,
          ppl: float | None = None, reward_fn: RewardFn | None = None
          ) -> tuple[list[dict], dict, dict]:
  """Returns (per-example records, test metrics, classwise metrics): every metric of
  `metrics.SUITE` that can run on what is given (a classifier family without its folder is
  skipped with a warning, as the original)."""
  inp = M.Inputs(contexts=[e["context"] for e in examples],
                 targets=[e["target"] for e in examples],
                 outputs=[e["output"] for e in examples], cfg=cfg, bow=bow, ppl=ppl,
                 reward_fn=reward_fn)
  return M.run(inp, examples=examples)


def format_table(metrics: dict) -> str:
  width = max((len(k) for k in metrics), default=0)
  return "\n".join(f"{k:<{width}}  {v:.6g}" for k, v in metrics.items())


def score_file(test_data: str, cfg: ScoreConfig, output_dir: str | None = None,
               embedding_model: str | None = None, overwrite: bool = False) -> dict:
  """`launch/score.py`: scores an existing test_data.json (outputs from anywhere). Every input
  is checked, and the output folder refused if another run's results are there, before any
  model is loaded. Rescoring a test.py folder in place (`overwrite`) keeps its perplexity,
  which depends on the model and the targets, not on the outputs scored here."""
  rows = read_test_data(test_data)
  cfg.check()
  if embedding_model:
    source_kind(embedding_model)
  out_dir = output_dir or os.path.dirname(os.path.abspath(test_data))
  info = results.provenance("score.py", test_data=os.path.abspath(test_data),
                            scores=dataclasses.asdict(cfg), embedding_model=embedding_model)
  results.check_free(out_dir, info, overwrite, own_input=test_data)
  previous = read_dict(os.path.join(out_dir, "test_metrics.json")) or {}
  bow = None
  if embedding_model:
    loaded = load_model(embedding_model, trust_pickle=cfg.trust_pickle)
    fmt = loaded.fmt
    ids = lambda texts: [[i for i in e.ids if i != fmt.pad_id] for e in fmt.encode_targets(texts)]
    bow = T.bow_similarity(loaded.model.input_embeddings(loaded.params),
                           ids([r["output"] for r in rows]), ids([r["target"] for r in rows]))
  same_rows = os.path.abspath(out_dir) == os.path.dirname(os.path.abspath(test_data))
  records, metrics, classwise = score(
      rows, cfg, bow=bow, ppl=previous.get("ppl") if same_rows else None)
  results.write(out_dir, records, metrics, classwise, info)
  return metrics

