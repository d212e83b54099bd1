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

from empathy_jax.errors import DatasetError, OutputExistsError, fail, parse_flags
from empathy_jax.survey import commands

F = flags
SUBCOMMANDS = ("add_model", "push_samples", "add_rater", "serve", "results", "ratings",
               "reward_dataset")
_DIR = F.DEFINE_string("survey_dir", "survey", "The survey's folder.")
_NAME = F.DEFINE_string("model_name", None, "add_model: the model's name (GOLD is reserved).")
_MODEL_DIR = F.DEFINE_string("model_dir", None, "add_model: a tested run's folder "
                             "(test_data.json).")
_DATASET = F.DEFINE_string("dataset_dir", None, "add_model: the dataset whose test split the "
                           "run answered (its contexts and the GOLD human targets); needed "
                           "the first time.")
_NUM = F.DEFINE_integer("num_per_model", None, "push_samples: contexts to push (every pair "
                        "of models on each).")
_SEED = F.DEFINE_integer("seed", None, "add_model/push_samples: seed of the draw and the "
                         "sides (default: fresh); ratings: seed of the bootstrap (default 0).")
_RATER = F.DEFINE_string("name", None, "add_rater: the rater's name.")
_HOST = F.DEFINE_string("host", "127.0.0.1", "serve: address to listen on (127.0.0.1: this "
                        "machine only).")
_PORT = F.DEFINE_integer("port", 8000, "serve: port (0: any free port).")
_LEASE = F.DEFINE_float("lease_seconds", 900, "serve: a sample handed out and not answered "
                        "returns to the pool after this long.")
_K = F.DEFINE_float("K", 32, "ratings: Elo's K (the original's -K/--learning_rate).")
F.DEFINE_alias("learning_rate", "K")
_RESAMPLES = F.DEFINE_integer("num_resamples", 1000, "ratings: bootstrap resamples of the "
                              "answers for the 95% intervals.")
_OUT = F.DEFINE_string("output_dir", None, "reward_dataset: writes "
                       "OUTPUT_DIR/reward_dataset/train/.")
_OVERWRITE = F.DEFINE_bool("overwrite", False, "reward_dataset: replace a reward dataset "
                           "already there.")


def _require(*holders):
  for holder in holders:
    if holder.value is None:
      raise ValueError(f"--{holder.name}: required by this subcommand")


def _run(command: str) -> None:
  survey = _DIR.value
  if command == "add_model":
    _require(_NAME, _MODEL_DIR)
    got = commands.add_model(survey, _NAME.value, _MODEL_DIR.value, _DATASET.value, _SEED.value)
    print(f"added {_NAME.value} (version {got['version']}, {got['responses']} responses) as "
          f"{os.path.join(survey, 'model_data', got['model_id'] + '.json')}; "
          f"{got['samples_added']} new samples")
  elif command == "push_samples":
    _require(_NUM)
    got = commands.push_samples(survey, _NUM.value, _SEED.value)
    if got["contexts"] < got["asked"]:
      print(f"warning: only {got['contexts']} contexts were left to push")
    print(f"pushed {got['samples']} samples on {got['contexts']} contexts")
  elif command == "add_rater":
    _require(_RATER)
    token = commands.add_rater(survey, _RATER.value)
    print(f"{_RATER.value}'s link (with serve's address): "
          f"http://{_HOST.value}:{_PORT.value}/#rater={token}")
    print(token)
  elif command == "serve":
    commands.serve(survey, _HOST.value, _PORT.value, _LEASE.value,
                   announce=lambda line: print(line, flush=True))
  elif command == "results":
    got = commands.results(survey)
    print(f"{got['answers']} answers in {got['path']}")
  elif command == "ratings":
    got = commands.ratings(survey, _K.value, _RESAMPLES.value,
                           0 if _SEED.value is None else _SEED.value)
    print(commands.format_ratings(got))
    print(f"written to {got['folder']}")
  else:
    _require(_OUT)
    got = commands.make_reward_dataset(survey, _OUT.value, _OVERWRITE.value)
    print(f"pairwise ratings of {got['pairs']} answers on {got['contexts']} contexts in "
          f"{got['folder']}")


def main(argv):
  if len(argv) != 2 or argv[1] not in SUBCOMMANDS:
    fail(f"subcommand: give one of {', '.join(SUBCOMMANDS)} (got {' '.join(argv[1:]) or 'none'})")
  try:
    _run(argv[1])
  except (DatasetError, OutputExistsError, ValueError) as e:
    fail(str(e))
  except sqlite3.Error as e:
    fail(f"{os.path.join(_DIR.value, 'survey.sqlite')}: {e}")
  except OSError as e:
    fail(f"{e.filename or _DIR.value}: {e.strerror or e}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
