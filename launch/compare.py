#!/usr/bin/env python
"""Compares evaluated models: every test_metrics.json under --root (test.py, score.py and
test_llm.py outputs) in one CSV, a printed table, a bar chart beside the original's published
results, and random test examples side by side with their per-example scores.

  python launch/compare.py --root outputs --output_dir outputs/compare --num_examples 3

Writes OUTPUT_DIR/compare.csv (a row per model, a column per metric), compare.png (+
compare.json, the numbers plotted) and compare_examples.json.
"""

import os

from absl import app, flags

from empathy_jax.errors import DatasetError
from empathy_jax.evaluation.compare import compare
from empathy_jax import launch_flags

F = flags
_ROOT = F.DEFINE_string("root", None, "Folder searched for test_metrics.json files.",
                        required=True)
_OUT = F.DEFINE_string("output_dir", None, "Where the CSV, plot and examples go.",
                       required=True)
_SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets",
                        "published_results")
_PUBLISHED = F.DEFINE_string("published_dir", _SHIPPED if os.path.isdir(_SHIPPED) else "",
                             "The original's published result folders ('' for none).")
_EXAMPLES = F.DEFINE_integer("num_examples", 3, "Random test examples shown side by side.")
_SEED = F.DEFINE_integer("seed", 0, "Seed of the example draw.")


def main(argv):
  del argv
  try:
    result = compare(_ROOT.value, _OUT.value, _PUBLISHED.value or None, _EXAMPLES.value,
                     _SEED.value)
  except DatasetError as e:
    launch_flags.fail(str(e))
  print(result["table"])
  if result["examples"]:
    print()
    print(result["examples"])


if __name__ == "__main__":
  app.run(main)
