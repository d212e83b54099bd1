"""The whole loop in one command (`launch/pipeline.py`): SFT -> reward model -> PPO (and/or DPO,
GRPO, RLOO: `algorithms`) -> the metric classifiers (emotion, intent, EPITOME; trained here once,
`classifiers`) -> test of the SFT policy and of each trained one -> one report. Each stage is the library function its own launcher
calls, on its own run folder under OUTPUT_DIR; a stage that finished with the same settings is
not run again, an interrupted one resumes, so rerunning the command after a kill continues.

OUTPUT_DIR/report/report.md and report.html (`pipeline_report`): the change in held-out
reward with its 95% interval, degenerate-output checks, the run, the metrics beside the
original's published results, the training curves and sample responses.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from empathy_jax import experiments
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.evaluation import classifier_export, results
from empathy_jax.evaluation.policy_kl import sampled_kl
from empathy_jax.evaluation.suite import ScoreConfig
from empathy_jax.evaluation.testing import TestConfig, run_test
from empathy_jax.generation.config import USER_FLAGS
from empathy_jax.json_files import read_dict, write_atomic
from empathy_jax.models import model_dir
from empathy_jax.models.api import param_count
from empathy_jax.models.loading import load_model
from empathy_jax.pipeline_report import write_report
from empathy_jax.settings import flag_fields
from empathy_jax.training import runs
from empathy_jax.training.classifier import (TEST_METRICS, ClassifierConfig, held_out,
                                             train_classifier)
from empathy_jax.training.dpo import DPOConfig, train_dpo
from empathy_jax.training.grpo import GRPOConfig, train_grpo
from empathy_jax.training.ppo.trainer import PPORunConfig, train_rlhf_pipeline
from empathy_jax.training.reward_trainer import RewardConfig, train_reward_model
from empathy_jax.training.sft import SFTConfig, train_dialogue_model

STAGES = ("sft", "reward", "ppo", "test")
ALGORITHMS = ("ppo", "dpo", "grpo", "rloo")
TIMINGS = "timings.json"  # seconds each stage took, kept across reruns


def demo() -> dict:
  """The main job's default: GODEL_SMALL_ED (shipped in the package) fine-tuned briefly, a
  reward model on its backbone, PPO, the metric classifiers, the test of both policies on 256
  rows: a fresh 2-core CPU runs it with nothing downloaded."""
  return {"classifiers": {t: dict(f) for t, f in experiments.DEMO_CLASSIFIERS.items()},
          "sft": {**experiments.SFT, **experiments.DEMO_SFT},
          "reward": {**experiments.REWARD, **experiments.DEMO_REWARD},
          "ppo": {**experiments.PPO, **experiments.DEMO_PPO},
          "dpo": {**experiments.DPO, **experiments.DEMO_DPO},
          "grpo": {**experiments.GRPO, **experiments.DEMO_GRPO},
          "test": {**experiments.EVAL, **experiments.DEMO_EVAL}}


def tiny() -> dict:
  """The tiny default: minutes on a laptop CPU with what the repository ships."""
  return {"classifiers": {},  # the tiny loop skips them (minutes more)
          "sft": {**experiments.SFT, **experiments.SFT_TINY, "model": "GODEL_TINY"},
          "reward": {**experiments.REWARD, **experiments.REWARD_TINY, "model": "GODEL_TINY"},
          "ppo": {**experiments.PPO, **experiments.PPO_TINY, "kl_penalty": 0.05},
          "dpo": {**experiments.DPO, **experiments.DPO_TINY},
          "grpo": {**experiments.GRPO, **experiments.GRPO_TINY},
          "test": {**experiments.EVAL, **experiments.EVAL_TINY}}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Per stage, the fields of its launcher's config (SFTConfig, RewardConfig, PPORunConfig,
  DPOConfig, GRPOConfig -- rloo is grpo with advantage "rloo"; test: dataset_dir, batch_size,
  data_erasure_level, metric_n_grams, max_examples and the generation flags). Output folders,
  the starting policy and the reward model are set by the pipeline. `algorithms`: which of
  ppo, dpo, grpo, rloo train a policy from the SFT stage's. `classifiers`: per task of
  `train_classifier` (emotion, intent, epitome_ER, epitome_IP, epitome_EX), its config's
  fields; the tasks left out are not scored ({}: no classifier metrics)."""

  output_dir: str = "runs/pipeline"
  classifiers: dict = dataclasses.field(default_factory=lambda: demo()["classifiers"])
  sft: dict = dataclasses.field(default_factory=lambda: demo()["sft"])
  reward: dict = dataclasses.field(default_factory=lambda: demo()["reward"])
  ppo: dict = dataclasses.field(default_factory=lambda: demo()["ppo"])
  dpo: dict = dataclasses.field(default_factory=lambda: demo()["dpo"])
  grpo: dict = dataclasses.field(default_factory=lambda: demo()["grpo"])
  test: dict = dataclasses.field(default_factory=lambda: demo()["test"])
  algorithms: tuple[str, ...] = ("ppo",)
  num_samples: int = 5
  published_dir: str | None = "datasets/published_results"

  def __post_init__(self):
    unknown = [a for a in self.algorithms if a not in ALGORITHMS]
    if unknown or not self.algorithms or len(set(self.algorithms)) != len(self.algorithms):
      raise ValueError(f"--algorithm takes distinct names among {', '.join(ALGORITHMS)}; got "
                       f"{', '.join(self.algorithms) or 'none'}")


class _Clock:
  """Seconds per stage: measured when a stage runs, kept from the earlier run when skipped."""

  def __init__(self, out_dir: str):
    self.path = os.path.join(out_dir, TIMINGS)
    self.seconds = read_dict(self.path) or {}

  def run(self, name: str, fn):
    start = time.perf_counter()
    result = fn()
    self.seconds[name] = time.perf_counter() - start
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    write_atomic(self.path, self.seconds)
    return result

  def text(self, name: str) -> str:
    s = self.seconds.get(name)
    return "—" if s is None else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def _stage(name, cfg, train_fn, out, clock):
  """Runs a train stage unless it finished with these settings; returns its run folder."""
  done = runs.finished_run(out, cfg.identity())
  if done:
    print(f"[{name}] finished before: {done}", flush=True)
    return done
  print(f"[{name}] training -> {out}", flush=True)
  return clock.run(name, lambda: train_fn(cfg)["run_dir"])


def _parameters(run_dir: str) -> str:
  try:
    params = model_dir.restore_tree(os.path.join(run_dir, "best", "params"))
  except Exception:  # pylint: disable=broad-except
    return "—"  # the report still comes out; the count is a courtesy
  return f"{param_count(params) / 1e6:.1f}M"


def _rows(stage: dict, split: str = "train", contexts: bool = False) -> str:
  """What a stage read; `contexts`: a stage of the reward dataset (reward model, DPO)."""
  if contexts:
    cap, unit = stage.get("max_contexts"), "contexts"
  else:
    cap = stage.get("max_train_examples") if split == "train" else stage.get("max_examples")
    unit = "rows"
  data = os.path.basename(os.path.normpath(stage.get("dataset_dir", "")))
  return f"{data} {split}: " + (f"first {cap} {unit}" if cap else f"all {unit}") + (
      f", {stage['max_epochs']} epoch(s)" if "max_epochs" in stage else "")


def _test(name, policy_dir, reward_dir, settings, out, clock):
  s = dict(settings)
  generation = {k: s.pop(k) for k in USER_FLAGS if k in s}
  given = {f.name: s.pop(f.name) for f in flag_fields(ScoreConfig) if f.name in s}
  scores = ScoreConfig(**{**given, "reward_model_dir": reward_dir})
  # The pipeline owns this folder: results of another model or other settings are replaced.
  cfg = TestConfig(pretrained_model_dir=policy_dir, output_dir=out, scores=scores,
                   generation=generation, overwrite=True, **s)
  if results.matching(out, cfg.provenance()):
    print(f"[test {name}] tested before with these settings: {out}", flush=True)
    with open(os.path.join(out, "test_metrics.json"), encoding="utf-8") as f:
      return json.load(f)
  print(f"[test {name}] {policy_dir} -> {out}", flush=True)
  return clock.run(f"test {name}", lambda: run_test(cfg))


def _kl(name, policy_dir, start_dir, settings, out, clock) -> dict:
  """KL(policy || SFT policy) per response on the test rows (`evaluation.policy_kl`), kept in
  OUT/kl.json and reused while the policies and rows are the same."""
  key = {"policy": policy_dir, "start": start_dir, "rows": settings.get("max_examples"),
         "max_new_tokens": settings.get("max_new_tokens", 24),
         "dataset_dir": os.path.abspath(settings["dataset_dir"]),
         "split": settings.get("split", "test"),
         "data_erasure_level": settings.get("data_erasure_level", 1.0)}
  path = os.path.join(out, "kl.json")
  done = read_dict(path)
  if done and done.get("key") == key:
    return done["result"]
  split = load_dialogue_split(split_dir(key["dataset_dir"], key["split"]),
                              key["data_erasure_level"])
  if key["rows"]:
    split = split.select(range(min(key["rows"], len(split))))
  print(f"[kl {name}] {policy_dir} against {start_dir}", flush=True)
  result = clock.run(f"kl {name}", lambda: sampled_kl(
      load_model(policy_dir), load_model(start_dir), split, key["max_new_tokens"],
      settings.get("batch_size", 32)))
  os.makedirs(out, exist_ok=True)
  write_atomic(path, {"key": key, "result": result})
  return result


def _classifier_configs(cfg: PipelineConfig, out: str) -> dict:
  return {task: ClassifierConfig(**{**fields, "task": task,
                                    "output_dir": os.path.join(out, "classifiers", task),
                                    "export_dir": os.path.join(out, "classifiers", "export"),
                                    "export_pth": False})  # test.py reads the .safetensors
          for task, fields in cfg.classifiers.items()}


def _classifiers(configs: dict, clock) -> tuple[dict, dict]:
  """Trains each classifier unless it finished before; returns (the test stage's classifier
  flags, each task's held-out metrics). A run writes its held-out metrics and export when it
  finishes; a finished run without them (killed in between) has them made again."""
  flags, metrics = {}, {}
  for task, ccfg in configs.items():
    run_dir = _stage(f"classifier {task}", ccfg, train_classifier, ccfg.output_dir, clock)
    metrics[task] = read_dict(os.path.join(run_dir, TEST_METRICS))
    if not (metrics[task] and classifier_export.exported(ccfg, ccfg.export_dir)):
      metrics[task] = held_out(ccfg, run_dir)["test"]
    flag = {"emotion": "emo_classifier_dir", "intent": "intent_classifier_dir"}.get(
        task, "epitome_dir")
    flags[flag] = classifier_export.folder(ccfg, ccfg.export_dir)
  if sum(t.startswith("epitome_") for t in configs) < 3:
    flags.pop("epitome_dir", None)  # EPITOME scores need all three mechanisms
  return flags, metrics


def _algorithm_stages(cfg: PipelineConfig, out: str, sft_dir: str, reward_dir: str):
  """(stage name, its config, its train function) of each chosen algorithm."""
  start = {"model": None, "pretrained_model_dir": sft_dir}
  for name in cfg.algorithms:
    where = {"output_dir": os.path.join(out, name)}
    if name == "ppo":
      yield name, PPORunConfig(**{**cfg.ppo, **start, **where,
                                  "reward_model_dir": reward_dir}), train_rlhf_pipeline
    elif name == "dpo":
      yield name, DPOConfig(**{**cfg.dpo, **start, **where}), train_dpo
    else:
      yield name, GRPOConfig(**{**cfg.grpo, **start, **where, "reward_model_dir": reward_dir,
                                "advantage": name}), train_grpo


def run_pipeline(cfg: PipelineConfig) -> dict:
  """Runs (or continues) every stage and writes the report; returns {stage: run folder or
  metrics, "report": path}."""
  out = cfg.output_dir
  sft_cfg = SFTConfig(**{**cfg.sft, "output_dir": os.path.join(out, "sft")})
  reward_cfg = RewardConfig(**{**cfg.reward, "output_dir": os.path.join(out, "reward")})
  # Every stage's inputs are checked before the first one starts (the algorithms' configs are
  # built with placeholders for the folders the first stages make).
  sft_cfg.check_inputs()
  reward_cfg.check_inputs()
  list(_algorithm_stages(cfg, out, sft_cfg.output_dir, reward_cfg.output_dir))  # fields checked
  classifier_cfgs = _classifier_configs(cfg, out)
  for ccfg in classifier_cfgs.values():
    ccfg.check_inputs()
  clock = _Clock(out)
  sft_dir = _stage("sft", sft_cfg, train_dialogue_model, sft_cfg.output_dir, clock)
  reward_dir = _stage("reward", reward_cfg, train_reward_model, reward_cfg.output_dir, clock)
  trained = {name: _stage(name, stage_cfg, fn, stage_cfg.output_dir, clock)
             for name, stage_cfg, fn in _algorithm_stages(cfg, out, sft_dir, reward_dir)}
  classifier_flags, held_out = _classifiers(classifier_cfgs, clock)
  test_settings = {**cfg.test, **classifier_flags}
  label = lambda name: f"SFT+{name.upper()}"
  tests = {"SFT": os.path.join(out, "test", "sft"),
           **{label(n): os.path.join(out, "test", n) for n in trained}}
  metrics = {"SFT": _test("SFT", sft_dir, reward_dir, test_settings, tests["SFT"], clock)}
  for name, run_dir in trained.items():
    metrics[label(name)] = _test(label(name), run_dir, reward_dir, test_settings,
                                 tests[label(name)], clock)
  kls = {label(n): _kl(label(n), d, sft_dir, cfg.test, tests[label(n)], clock)
         for n, d in trained.items()}

  start = cfg.sft.get("model") or cfg.sft.get("pretrained_model_dir")
  rows = {"ppo": _rows(cfg.ppo), "dpo": _rows(cfg.dpo, contexts=True), "grpo": _rows(cfg.grpo),
          "rloo": _rows(cfg.grpo)}
  summary = [("SFT", f"{start} fine-tuned", _parameters(sft_dir), _rows(cfg.sft),
              clock.text("sft")),
             ("reward", f"{cfg.reward.get('model') or cfg.reward.get('pretrained_model_dir')}"
                        f" + scalar head", _parameters(reward_dir),
              _rows(cfg.reward, contexts=True),
              clock.text("reward")),
             *((name.upper(), "the SFT policy", _parameters(d), rows[name], clock.text(name))
               for name, d in trained.items()),
             *((f"classifier {task}", "trained here from random weights", "",
                f"{os.path.basename(ccfg.dataset_dir)}: held-out accuracy "
                f"{held_out[task].get('accuracy', float('nan')):.3f}",
                clock.text(f"classifier {task}")) for task, ccfg in classifier_cfgs.items()),
             ("test", ", ".join(tests), "", _rows(cfg.test, "test"),
              " + ".join(clock.text(f"test {n}") for n in tests))]
  report = write_report(os.path.join(out, "report"), {"sft": sft_dir, "reward": reward_dir,
                                                       **trained}, metrics, tests,
                        cfg.published_dir, cfg.num_samples, summary, kls=kls,
                        train_times={label(n): clock.text(n) for n in trained},
                        own_classifiers=sorted(classifier_cfgs))
  print(f"report: {report}", flush=True)
  return {"sft": sft_dir, "reward": reward_dir, **trained, "metrics": metrics, "kl": kls,
          "report": report}
