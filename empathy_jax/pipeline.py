"""The whole loop in one command (`launch/pipeline.py`): SFT -> reward model -> PPO -> test of
the SFT and the PPO policies -> one report. Each stage is the library function its own launcher
calls, on its own run folder under OUTPUT_DIR; a stage that finished with the same settings is
not run again, an interrupted one resumes, so rerunning the command after a kill continues.

OUTPUT_DIR/report/report.md links PNGs: each stage's training curves, the metrics of SFT-only
and SFT+PPO beside the original's published results, and sample responses side by side.
"""

from __future__ import annotations

import dataclasses
import json
import os

from empathy_jax import experiments
from empathy_jax.training import runs

STAGES = ("sft", "reward", "ppo", "test")
# What each stage's curves plot (TensorBoard tags).
CURVES = {"sft": ("train_loss", "val_loss"),
          "reward": ("train_loss", "val_loss", "val_accuracy"),
          "ppo": ("train_objective/scores", "train_objective/kl", "val_reward")}


def tiny() -> dict:
  """The tiny default: minutes on a laptop CPU with what the repository ships."""
  return {"sft": {**experiments.SFT, **experiments.SFT_TINY, "model": "GODEL_TINY"},
          "reward": {**experiments.REWARD, **experiments.REWARD_TINY, "model": "GODEL_TINY"},
          "ppo": {**experiments.PPO, **experiments.PPO_TINY, "kl_penalty": 0.05},
          "test": {**experiments.EVAL, **experiments.EVAL_TINY}}


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Per stage, the fields of its launcher's config (SFTConfig, RewardConfig, PPORunConfig;
  test: dataset_dir, batch_size, data_erasure_level, metric_n_grams, max_examples and the
  generation flags). Output folders, the PPO policy and reward model are set by the pipeline."""

  output_dir: str = "runs/pipeline"
  sft: dict = dataclasses.field(default_factory=lambda: tiny()["sft"])
  reward: dict = dataclasses.field(default_factory=lambda: tiny()["reward"])
  ppo: dict = dataclasses.field(default_factory=lambda: tiny()["ppo"])
  test: dict = dataclasses.field(default_factory=lambda: tiny()["test"])
  num_samples: int = 5
  published_dir: str | None = "datasets/published_results"


def _stage(name, cfg, train_fn, out):
  """Runs a train stage unless it finished with these settings; returns its run folder."""
  done = runs.finished_run(out, cfg.identity())
  if done:
    print(f"[{name}] finished before: {done}", flush=True)
    return done
  print(f"[{name}] training -> {out}", flush=True)
  return train_fn(cfg)["run_dir"]


def _test(name, policy_dir, reward_dir, settings, out):
  from empathy_jax.evaluation.suite import ScoreConfig  # pylint: disable=import-outside-toplevel
  from empathy_jax.evaluation.testing import TestConfig, run_test  # pylint: disable=import-outside-toplevel

  from empathy_jax.evaluation import results  # pylint: disable=import-outside-toplevel

  s = dict(settings)
  generation = {k: s.pop(k) for k in ("beam_width", "sample", "temperature", "top_p", "top_k",
                                      "max_new_tokens", "length_alpha") if k in s}
  scores = ScoreConfig(reward_model_dir=reward_dir,
                       **{k: s.pop(k) for k in ("emo_classifier_dir", "intent_classifier_dir",
                                                "epitome_dir", "metric_n_grams") if k in s})
  # The pipeline owns this folder: results of another model or other settings are replaced.
  cfg = TestConfig(pretrained_model_dir=policy_dir, output_dir=out, scores=scores,
                   generation=generation, overwrite=True, **s)
  if results.matching(out, cfg.provenance()):
    print(f"[test {name}] tested before with these settings: {out}", flush=True)
    with open(os.path.join(out, "test_metrics.json"), encoding="utf-8") as f:
      return json.load(f)
  print(f"[test {name}] {policy_dir} -> {out}", flush=True)
  return run_test(cfg)


def run_pipeline(cfg: PipelineConfig) -> dict:
  """Runs (or continues) every stage and writes the report; returns {stage: run folder or
  metrics, "report": path}."""
  from empathy_jax.training.ppo.trainer import PPORunConfig, train_rlhf_pipeline  # pylint: disable=import-outside-toplevel
  from empathy_jax.training.reward_trainer import RewardConfig, train_reward_model  # pylint: disable=import-outside-toplevel
  from empathy_jax.training.sft import SFTConfig, train_dialogue_model  # pylint: disable=import-outside-toplevel

  out = cfg.output_dir
  sft_cfg = SFTConfig(**{**cfg.sft, "output_dir": os.path.join(out, "sft")})
  reward_cfg = RewardConfig(**{**cfg.reward, "output_dir": os.path.join(out, "reward")})
  # Every stage's inputs are checked before the first one starts.
  sft_cfg.check_inputs()
  reward_cfg.check_inputs()
  sft_dir = _stage("sft", sft_cfg, train_dialogue_model, sft_cfg.output_dir)
  reward_dir = _stage("reward", reward_cfg, train_reward_model, reward_cfg.output_dir)
  ppo_cfg = PPORunConfig(**{**cfg.ppo, "model": None, "pretrained_model_dir": sft_dir,
                            "reward_model_dir": reward_dir,
                            "output_dir": os.path.join(out, "ppo")})
  ppo_dir = _stage("ppo", ppo_cfg, train_rlhf_pipeline, ppo_cfg.output_dir)
  tests = {"SFT": os.path.join(out, "test", "sft"), "SFT+PPO": os.path.join(out, "test", "ppo")}
  metrics = {"SFT": _test("SFT", sft_dir, reward_dir, cfg.test, tests["SFT"]),
             "SFT+PPO": _test("SFT+PPO", ppo_dir, reward_dir, cfg.test, tests["SFT+PPO"])}
  from empathy_jax.pipeline_report import write_report  # pylint: disable=import-outside-toplevel

  report = write_report(os.path.join(out, "report"), {"sft": sft_dir, "reward": reward_dir,
                                                       "ppo": ppo_dir}, metrics, tests,
                        cfg.published_dir, cfg.num_samples)
  print(f"report: {report}", flush=True)
  return {"sft": sft_dir, "reward": reward_dir, "ppo": ppo_dir, "metrics": metrics,
          "report": report}
