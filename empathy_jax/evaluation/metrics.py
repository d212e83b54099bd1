"""The metric suite as a list of metric objects (`SUITE`): each says what it reads, whether it
can run, how it scores, the result keys it writes (in the original's order), which of them the
published table shows and which per-example scores sit beside an output. `suite.score` runs
the list; `compare` and the report take their key orders from it. A new metric is its class
here (or in its own module) and one entry in `SUITE`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable, Sequence

import numpy as np

from empathy_jax.errors import CheckpointError
from empathy_jax.evaluation import classifiers as C, text_metrics as T
from empathy_jax.models import reward_model

# reward_fn(contexts, responses) -> one reward per example (`models.reward_model.RewardScorer`).
RewardFn = Callable[[Sequence[Sequence[str]], Sequence[str]], np.ndarray]


@dataclasses.dataclass
class Inputs:
  """What the metrics read: the examples' texts, the score settings (`suite.ScoreConfig`) and
  what the caller computed (BOW similarities per example, perplexity, a reward function)."""

  contexts: list
  targets: list[str]
  outputs: list[str]
  cfg: object
  bow: dict[str, np.ndarray] | None = None
  ppl: float | None = None
  reward_fn: RewardFn | None = None


@dataclasses.dataclass(frozen=True)
class Metric:
  """keys: test_metrics.json keys, in order; published: those in the published table;
  examples: per-example record keys shown beside an output; source: the `ScoreConfig` field
  (and flag) naming the model folder it needs, if any."""

  keys: tuple[str, ...]
  published: tuple[str, ...] = ()
  examples: tuple[str, ...] = ()
  source: str | None = None

  def check_source(self, path: str) -> None:  # pylint: disable=unused-argument
    """Checks the given `source` folder before any heavy work (raises `CheckpointError`)."""

  def skip_reason(self, inp: Inputs) -> str | None:  # pylint: disable=unused-argument
    """Why this metric cannot run on `inp` (logged as a warning), or None."""
    return None

  def score(self, inp: Inputs, records: list[dict]) -> tuple[dict, dict]:
    """(metrics, classwise metrics); per-example values go into `records`."""
    raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Overlap(Metric):
  """BLEU and NIST of the outputs against the targets (nltk's, as the original)."""

  def score(self, inp, records):
    return T.bleu_nist(inp.targets, inp.outputs, inp.cfg.metric_n_grams), {}


@dataclasses.dataclass(frozen=True)
class Distinct(Metric):
  """dist-n of the outputs."""

  def score(self, inp, records):
    return T.distinct(inp.outputs, inp.cfg.metric_n_grams), {}


@dataclasses.dataclass(frozen=True)
class Bow(Metric):
  """Embedding similarities of output and target (computed by the caller with the model's
  embeddings, per example)."""

  def skip_reason(self, inp):
    return None if inp.bow is not None else "no dialogue model: skipping avg/extrema/greedy BOW similarity"

  def score(self, inp, records):
    metrics = {}
    for k, v in inp.bow.items():
      metrics[k] = float(np.mean(v)) if len(v) else 0.0
      for r, x in zip(records, v):
        r[k] = float(x)
    return metrics, {}


@dataclasses.dataclass(frozen=True)
class TextClassifier(Metric):
  """Emotion or intent accuracy: the classifier's label of each output against its label of
  the target."""

  kind: str = "emotion"  # "emotion" or "empintent"

  def check_source(self, path):
    C.check_text_classifier_dir(path, self.kind)

  def skip_reason(self, inp):
    if getattr(inp.cfg, self.source):
      return None
    return f"no --{self.source} directory: skipping {self.kind} metrics"

  def score(self, inp, records):
    labels = C.EMOTION_LABELS if self.kind == "emotion" else C.INTENT_LABELS
    clf = C.load_text_classifier(getattr(inp.cfg, self.source), labels, self.kind,
                                 inp.cfg.trust_pickle)
    out_pred = clf.predict(inp.outputs, inp.cfg.batch_size)
    tgt_pred = clf.predict(inp.targets, inp.cfg.batch_size)
    acc, f1, per_class = C.classification_report(out_pred, tgt_pred, labels)
    for r, o, t in zip(records, out_pred, tgt_pred):
      r[f"{self.kind}_output"], r[f"{self.kind}_target"] = labels[int(o)], labels[int(t)]
    return {f"{self.kind}_accuracy": acc, f"{self.kind}_f1": f1}, {self.kind: per_class}


@dataclasses.dataclass(frozen=True)
class Epitome(Metric):
  """EPITOME's three mechanisms: mean level of outputs and targets, and their squared
  difference."""

  def check_source(self, path):
    C.check_epitome_dir(path)

  def skip_reason(self, inp):
    return None if inp.cfg.epitome_dir else "no --epitome_dir: skipping EPITOME metrics"

  def score(self, inp, records):
    epitome = C.load_epitome(inp.cfg.epitome_dir)
    seekers = [c[-1] for c in inp.contexts]
    metrics = {}
    for mech in C.EPITOME_MECHANISMS:
      out_lv = epitome.levels(mech, seekers, inp.outputs, inp.cfg.batch_size)
      tgt_lv = epitome.levels(mech, seekers, inp.targets, inp.cfg.batch_size)
      metrics[f"epitome_{mech}_output"] = float(out_lv.mean())
      metrics[f"epitome_{mech}_target"] = float(tgt_lv.mean())
      metrics[f"diff_{mech}"] = float(np.mean((out_lv - tgt_lv) ** 2.0))
      for r, o, t in zip(records, out_lv, tgt_lv):
        r[f"epitome_{mech}_output"], r[f"epitome_{mech}_target"] = int(o), int(t)
    return metrics, {}


@dataclasses.dataclass(frozen=True)
class Reward(Metric):
  """The reward model's mean and variance over targets and outputs (no warning when absent:
  the original has no reward metric)."""

  def check_source(self, path):
    try:
      reward_model.check_source(path)
    except CheckpointError as e:
      raise CheckpointError(f"--{self.source} {e}") from e

  def skip_reason(self, inp):
    return None if (inp.cfg.reward_model_dir or inp.reward_fn is not None) else ""

  def score(self, inp, records):
    reward_fn = inp.reward_fn or reward_model.load_scorer(
        inp.cfg.reward_model_dir, inp.cfg.batch_size, inp.cfg.trust_pickle)
    metrics = {}
    for side, texts in (("target", inp.targets), ("output", inp.outputs)):
      rewards = np.asarray(reward_fn(inp.contexts, texts), np.float64)
      metrics[f"mean_reward_{side}"] = float(rewards.mean())
      metrics[f"var_reward_{side}"] = float(rewards.var())
      for r, v in zip(records, rewards):
        r[f"reward_{side}"] = float(v)
    return metrics, {}


@dataclasses.dataclass(frozen=True)
class Perplexity(Metric):
  """The model's perplexity on the targets (computed by the caller)."""

  def skip_reason(self, inp):
    return None if inp.ppl is not None else ""

  def score(self, inp, records):
    return {"ppl": float(inp.ppl)}, {}


_MECHS = C.EPITOME_MECHANISMS
SUITE: tuple[Metric, ...] = (
    Overlap(("bleu", "nist"), published=("bleu",)),
    Distinct(("dist-1", "dist-2", "dist-3", "dist-4"), published=("dist-2",)),
    Bow(("avg_bow", "extrema_bow", "greedy_bow", "greedy_bow_symmetric")),
    TextClassifier(("emotion_accuracy", "emotion_f1"), ("emotion_accuracy",),
                   ("emotion_output",), "emo_classifier_dir", kind="emotion"),
    TextClassifier(("empintent_accuracy", "empintent_f1"), ("empintent_accuracy",),
                   ("empintent_output",), "intent_classifier_dir", kind="empintent"),
    Epitome(tuple(f"epitome_{m}_output" for m in _MECHS)
            + tuple(f"epitome_{m}_target" for m in _MECHS) + tuple(f"diff_{m}" for m in _MECHS),
            tuple(f"epitome_{m}_output" for m in _MECHS),
            tuple(f"epitome_{m}_output" for m in _MECHS), "epitome_dir"),
    Reward(("mean_reward_target", "var_reward_target", "mean_reward_output",
            "var_reward_output"), ("mean_reward_output",), ("reward_output",),
           "reward_model_dir"),
    Perplexity(("ppl",), ("ppl",)),
)


def run(inp: Inputs, metrics_list: Sequence[Metric] = SUITE,
        examples: list[dict] | None = None) -> tuple[list[dict], dict, dict]:
  """(per-example records, test metrics, classwise metrics) of every metric that can run."""
  records = [dict(e) for e in (examples or [{} for _ in inp.outputs])]
  metrics: dict[str, float] = {}
  classwise: dict[str, dict] = {}
  for metric in metrics_list:
    reason = metric.skip_reason(inp)
    if reason is not None:
      if reason:
        logging.warning(reason)
      continue
    values, per_class = metric.score(inp, records)
    metrics.update(values)
    classwise.update(per_class)
  return records, metrics, classwise


def sources(metrics_list: Sequence[Metric] = SUITE) -> tuple[str, ...]:
  """The `ScoreConfig` fields naming the metrics' model folders."""
  return tuple(m.source for m in metrics_list if m.source)


def key_order(metrics_list: Sequence[Metric] = SUITE) -> tuple[str, ...]:
  return tuple(k for m in metrics_list for k in m.keys)


def published_keys(metrics_list: Sequence[Metric] = SUITE) -> tuple[str, ...]:
  return tuple(k for m in metrics_list for k in m.published)


def example_keys(metrics_list: Sequence[Metric] = SUITE) -> tuple[str, ...]:
  return tuple(k for m in metrics_list for k in m.examples)
