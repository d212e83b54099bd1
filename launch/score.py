#!/usr/bin/env python
"""Scores an existing test_data.json (id, context, target, output per example) without a
dialogue model, and writes the same three result files.

  python launch/score.py --test_data outputs/gpt3/test_data.json \\
      --emo_classifier_dir clf/emotion --intent_classifier_dir clf/intent --epitome_dir epitome \\
      --output_dir outputs/gpt3_scored

Without --output_dir the results go beside the file; a folder holding another run's results
(test_llm.py's, test.py's) is refused unless --overwrite.

BOW similarities need a dialogue model's embeddings: add --embedding_model NAME_OR_DIR.
"""

from absl import app, flags

from empathy_jax import launch_flags
from empathy_jax.errors import CheckpointError, DatasetError, OutputExistsError
from empathy_jax.evaluation.suite import format_table, score_file

F = flags
_DATA = F.DEFINE_string("test_data", None, "test_data.json to score.", required=True)
_OUTPUT = F.DEFINE_string("output_dir", None, "Where results go (default: beside the file).")
_SCORES = launch_flags.define_metric_flags()
launch_flags.list_in_help()
_BATCH = F.DEFINE_integer("batch_size", 32, "Classifier batch size.")
_OVERWRITE = launch_flags.define_overwrite_flag()
_EMB = F.DEFINE_string("embedding_model", None, "Dialogue model whose input embeddings give "
                       "the BOW similarities (optional).")


def main(argv):
  del argv
  cfg = _SCORES(_BATCH.value)
  try:  # every input is checked before any model is loaded
    metrics = score_file(_DATA.value, cfg, _OUTPUT.value, _EMB.value, _OVERWRITE.value)
  except (DatasetError, CheckpointError, OutputExistsError) as e:
    launch_flags.fail(str(e))
  print(format_table(metrics))


if __name__ == "__main__":
  app.run(main)
