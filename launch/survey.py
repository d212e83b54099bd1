#!/usr/bin/env python
"""A local survey where people rate pairs of model responses (the original's
crowd_sourced_feedback, without AWS). One folder (--survey_dir) holds everything:

  survey.py add_model --model_name SFT --model_dir outputs/sft \\
      --dataset_dir datasets/empathetic_dialogues     # a tested run (test_data.json)
  survey.py push_samples --num_per_model 20           # every pair of models on 20 contexts
  survey.py add_rater --name alice                    # prints alice's link and token
  survey.py serve --port 8000                         # the raters' page, until Ctrl-C
  survey.py results                                   # results/survey_results.json
  survey.py ratings --K 32                            # Elo (+ 95% intervals), heatmap
  survey.py reward_dataset --output_dir datasets/my_ratings   # for train_reward_model.py

Each subcommand takes --survey_dir (default: survey). Formats are the original's.
"""

import os
import sqlite3

from absl import app, flags

from empathy_jax import settings
from empathy_jax.errors import DatasetError, OutputExistsError, fail, parse_flags
from empathy_jax.survey import commands
from empathy_jax.survey.config import SUBCOMMANDS, SurveyConfig

settings.define_flags(SurveyConfig)
flags.DEFINE_alias("learning_rate", "K")  # the original's name of --K


def main(argv):
  if len(argv) != 2:
    fail(f"subcommand: give one of {', '.join(SUBCOMMANDS)} (got {' '.join(argv[1:]) or 'none'})")
  cfg = settings.from_flags(SurveyConfig)
  try:
    commands.run(argv[1], cfg)
  except (DatasetError, OutputExistsError, ValueError) as e:
    fail(str(e))
  except sqlite3.Error as e:
    fail(f"{os.path.join(cfg.survey_dir, 'survey.sqlite')}: {e}")
  except OSError as e:
    fail(f"{e.filename or cfg.survey_dir}: {e.strerror or e}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
