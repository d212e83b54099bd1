#!/usr/bin/env python
"""Trains one of the metric classifiers here, from random weights, on the shipped data:
emotion (32 labels) and intent (9) on EmpatheticIntents, and EPITOME's three mechanisms
(emotional reactions, interpretations, explorations: levels 0-2 with rationales) on the
EPITOME Reddit data. The last line printed is one JSON object with its held-out metrics.

  python launch/train_classifier.py --task emotion --output_dir runs/clf/emotion \\
      --export_dir runs/clf/export
  python launch/train_classifier.py --task epitome_IP --output_dir runs/clf/IP \\
      --export_dir runs/clf/export
  python launch/test.py ... --emo_classifier_dir runs/clf/export/emotion \\
      --intent_classifier_dir runs/clf/export/intent --epitome_dir runs/clf/export/epitome

--dataset_dir defaults to the shipped datasets/empathetic_intents or datasets/epitome. Writes
OUT/tensorboard_logs/version_N/ (best/ and latest/ classifier folders, TensorBoard events, the
resumable state; re-running the command resumes) and, with --export_dir, the original's formats.
"""

import os

from absl import app, flags

from empathy_jax import launch_flags
from empathy_jax.data.classifier_data import TEXT_TASKS
from empathy_jax.training.classifier import ClassifierConfig, train_classifier

_DATASETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "datasets")


def _held_out(summary: dict) -> dict:
  test = summary["test"]
  line = {"task": launch_flags.value("task"), "run_dir": summary["run_dir"],
          "test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"]}
  if "rationale_f1" in test:
    line["test_rationale_f1"] = test["rationale_f1"]
  if summary.get("export"):
    line["export"] = summary["export"]
  return line


_train = launch_flags.trainer_main(ClassifierConfig, train_classifier, role=None,
                                   summarize=_held_out, one_line=True)


def main(argv):
  task = launch_flags.value("task")  # the command line's, else the experiment config's
  if not task:
    launch_flags.fail("--task: give one of emotion, intent, epitome_ER, epitome_IP, epitome_EX")
  if not launch_flags.value("dataset_dir"):
    shipped = "empathetic_intents" if task in TEXT_TASKS else "epitome"
    flags.FLAGS.dataset_dir = os.path.join(_DATASETS, shipped)
  _train(argv)


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
