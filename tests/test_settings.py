"""Settings defined once: a launcher's flags carry the defaults of the config fields they set
(the train launchers, test.py, the benchmark and the planner, each imported in its own
process), and `settings.define_flags` turns fields into absl flags of the right kind."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from absl import flags

from conftest import REPO
from empathy_jax import settings
from benchmarks.common import BenchConfig
from empathy_jax.evaluation import metrics
from empathy_jax.evaluation.multi_turn import MultiTurnConfig
from empathy_jax.evaluation.suite import ScoreConfig
from empathy_jax.evaluation.testing import TestConfig
from empathy_jax.llm.runner import LLMLaunchConfig
from empathy_jax.planning import PlanConfig
from empathy_jax.settings import setting
from empathy_jax.survey.config import SurveyConfig
from empathy_jax.training.classifier import ClassifierConfig
from empathy_jax.training.dpo import DPOConfig
from empathy_jax.training.grpo import GRPOConfig
from empathy_jax.training.ppo.trainer import PPORunConfig
from empathy_jax.training.reward_trainer import RewardConfig
from empathy_jax.training.sft import SFTConfig

# launcher -> (its config, whether every field is a flag; else only the `setting` fields).
LAUNCHERS = {"train_dialogue_model.py": (SFTConfig, True),
             "train_reward_model.py": (RewardConfig, True),
             "train_rlhf_pipeline.py": (PPORunConfig, True), "benchmark.py": (BenchConfig, True),
             "train_dpo.py": (DPOConfig, True), "train_grpo.py": (GRPOConfig, True),
             "test_llm.py": (LLMLaunchConfig, True), "multi_turn.py": (MultiTurnConfig, True),
             "plan.py": (PlanConfig, False), "test.py": (TestConfig, False),
             "survey.py": (SurveyConfig, True),
             "train_classifier.py": (ClassifierConfig, False),
             "score.py": (ScoreConfig, False)}


def _flags_of(launcher):
  done = subprocess.run([sys.executable, os.path.join(REPO, "tests", "flag_dump.py"),
                         os.path.join(REPO, "launch", launcher)], capture_output=True,
                        text=True, cwd=REPO, timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


# Defaults the launchers had before their flags were generated (the original's, where it has
# the flag): generation must not move them.
PINNED = {"train_dialogue_model.py": dict(max_epochs=10, batch_size=8, initial_lr=1e-5,
                                          data_erasure_level=0.3, lr_schedule="epoch"),
          "train_reward_model.py": dict(max_epochs=1, batch_size=1, initial_lr=1e-5,
                                        dropout=0.6, loss="original"),
          "train_rlhf_pipeline.py": dict(max_epochs=10, batch_size=8, initial_lr=1e-5,
                                         max_new_tokens=100, ppo_epochs=4, clip_epsilon=0.2,
                                         kl_penalty=0.0, recipe="default", sample=True),
          "train_dpo.py": dict(beta=0.1, loss_type="sigmoid", label_smoothing=0.0,
                               ties="exclude", pair_weight="none", log_interval=10),
          "train_grpo.py": dict(advantage="grpo", group_size=4, beta=0.04, num_iterations=1,
                                scale_rewards=True, log_interval=1, checkpoint_interval=50),
          "test_llm.py": dict(api_style="chat", prompt_style="chat", max_new_tokens=None,
                              temperature=None, top_p=None, concurrency=4, max_retries=8,
                              data_erasure_level=1.0, split="test", batch_size=32),
          "multi_turn.py": dict(max_turns=5, max_sessions=5, batch_size=8, seed=0),
          "test.py": dict(batch_size=32, data_erasure_level=1.0, split="test", seed=0),
          "benchmark.py": dict(repeats=5, max_new_tokens=32, batch_size=None),
          "plan.py": dict(batch_size=8, max_new_tokens=100, device_memory_gb=16.0),
          "train_classifier.py": dict(max_epochs=None, batch_size=None, max_length=64,
                                      rationale_weight=0.1, log_interval=20),
          "survey.py": dict(survey_dir="survey", host="127.0.0.1", port=8000, K=32.0,
                            lease_seconds=900.0, num_resamples=1000, overwrite=False),
          "score.py": dict(metric_n_grams=4, emo_classifier_dir=None, batch_size=32)}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_every_launcher_flag_has_its_fields_default_and_a_help(launcher):
  config_cls, every_field = LAUNCHERS[launcher]
  defined = _flags_of(launcher)
  assert {k: defined[k][0] for k in PINNED[launcher]} == PINNED[launcher]
  fields = {f.name: f for f in (dataclasses.fields(config_cls) if every_field
                                else settings.flag_fields(config_cls)) if f.name != "mesh"}
  missing = sorted(set(fields) - set(defined))
  assert not missing, f"fields without a flag: {missing}"
  for name, field in fields.items():
    default, help_text = defined[name]
    want = None if field.default is dataclasses.MISSING else field.default
    assert default == want, (name, default, want)
    assert help_text and help_text.strip(), name


def test_each_metric_that_needs_a_model_has_its_folder_setting():
  """The metric list names the folders it needs; ScoreConfig (and so every launcher's metric
  flags) has a setting for each and no folder setting no metric reads."""
  folders = {f.name for f in settings.flag_fields(ScoreConfig) if f.name.endswith("_dir")}
  assert set(metrics.sources()) == folders
  assert len(metrics.sources()) == 4  # emotion, intent, EPITOME, reward


def test_define_flags_makes_flags_of_each_kind_from_fields():
  @dataclasses.dataclass(frozen=True, kw_only=True)
  class Example:
    folder: str = setting(help="Where.")
    steps: int = setting(3, "How many.")
    limit: int | None = setting(None, "At most.")
    rate: float = setting(0.5, "How fast.")
    on: bool = setting(True, "Whether.")
    mode: str = setting("a", "Which.", ("a", "b"))
    internal: int = 7  # not a setting: no flag

  values = flags.FlagValues()
  assert settings.define_flags(Example, values) == ["folder", "steps", "limit", "rate", "on",
                                                     "mode"]
  values(["prog", "--folder=x", "--steps=5", "--limit=2", "--rate=0.25", "--noon", "--mode=b"])
  assert {n: values[n].value for n in ("folder", "steps", "limit", "rate", "on", "mode")} == {
      "folder": "x", "steps": 5, "limit": 2, "rate": 0.25, "on": False, "mode": "b"}
  assert values["folder"].default is None and values["limit"].default is None
  assert "internal" not in values
  with pytest.raises(flags.IllegalFlagValueError):
    values["mode"].parse("c")
  with pytest.raises(ValueError, match="--mode must be one of a, b, got 'c'"):
    settings.check_choices(Example(folder="x", mode="c"))
  with pytest.raises(ValueError, match="needs its help"):
    setting(1)

  @dataclasses.dataclass(frozen=True)
  class Clash:
    steps: int = setting(4, "Another default for a flag defined already.")

  with pytest.raises(ValueError, match="--steps is defined already with default 3"):
    settings.define_flags(Clash, values)
