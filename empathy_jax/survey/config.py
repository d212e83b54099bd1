"""`launch/survey.py`'s settings, defined once: each field is a flag (`settings.setting`)."""

from __future__ import annotations

import dataclasses

from empathy_jax.settings import setting

SUBCOMMANDS = ("add_model", "push_samples", "add_rater", "serve", "results", "ratings",
               "reward_dataset")
# The flags each subcommand cannot do without.
REQUIRED = {"add_model": ("model_name", "model_dir"), "push_samples": ("num_per_model",),
            "add_rater": ("name",), "reward_dataset": ("output_dir",)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class SurveyConfig:
  survey_dir: str = setting("survey", "The survey's folder.")
  model_name: str | None = setting(None, "add_model: the model's name (GOLD is reserved).")
  model_dir: str | None = setting(None, "add_model: a tested run's folder (test_data.json).")
  dataset_dir: str | None = setting(None, "add_model: the dataset whose test split the run "
                                    "answered (its contexts and the GOLD human targets); "
                                    "needed the first time.")
  num_per_model: int | None = setting(None, "push_samples: contexts to push (every pair of "
                                      "models on each).")
  seed: int | None = setting(None, "push_samples/add_model: seed of the contexts' draw and "
                             "the sides (default: fresh); ratings: seed of the bootstrap "
                             "(default 0).")
  name: str | None = setting(None, "add_rater: the rater's name.")
  host: str = setting("127.0.0.1", "serve: address to listen on (127.0.0.1: this machine "
                      "only).")
  port: int = setting(8000, "serve: port (0: any free port).")
  lease_seconds: float = setting(900.0, "serve: a sample handed out and not answered returns "
                                 "to the pool after this long.")
  K: float = setting(32.0, "ratings: Elo's K (the original's -K/--learning_rate).")
  num_resamples: int = setting(1000, "ratings: bootstrap resamples of the answers for the 95% "
                               "intervals.")
  output_dir: str | None = setting(None, "reward_dataset: writes "
                                   "OUTPUT_DIR/reward_dataset/train/.")
  overwrite: bool = setting(False, "reward_dataset: replace a reward dataset already there.")

  def check(self, command: str) -> None:
    """Raises ValueError naming the subcommand or the flag it lacks."""
    if command not in SUBCOMMANDS:
      raise ValueError(f"subcommand: give one of {', '.join(SUBCOMMANDS)} (got {command!r})")
    for name in REQUIRED.get(command, ()):
      if getattr(self, name) is None:
        raise ValueError(f"--{name}: required by {command}")
