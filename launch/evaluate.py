#!/usr/bin/env python
"""Human evaluation, as the original's `evaluate`: a random test context and the responses of
several models (shuffled, anonymous), each rated for Empathy and Specificity from 0 to 5.

  python launch/evaluate.py --model_dirs outputs/sft,outputs/ppo --output_dir outputs/human \\
      --num_samples 20
  python launch/evaluate.py --model_dirs outputs/sft,outputs/ppo --output_dir outputs/human \\
      --reuse_cache      # continue a session

--model_dirs: folders with test.py's test_data.json (or the files). Every answer is saved at
once to OUTPUT_DIR/human_eval.json; q saves and quits, and a kill loses at most the answer
being typed. When every sample is rated: model_scores.json (mean and variance per model and
criterion) and human_eval_correlation.png (+ .json), the Pearson correlations of diff_ER,
diff_EX, diff_IP, reward (where test_data.json has them), empathy and specificity.
"""

import sys

from absl import app, flags

from empathy_jax import launch_flags
from empathy_jax.errors import DatasetError
from empathy_jax.evaluation import human_eval

F = flags
_DIRS = F.DEFINE_list("model_dirs", None, "Comma-separated folders (or test_data.json files) "
                      "of the models to compare.", required=True)
_NAMES = F.DEFINE_list("model_names", None, "Names for the models (default: folder names).")
_OUT = F.DEFINE_string("output_dir", None, "Where human_eval.json and the results go.",
                       required=True)
_SAMPLES = F.DEFINE_integer("num_samples", 10, "Test contexts to rate.")
_SEED = F.DEFINE_integer("seed", 0, "Seed of the sample draw and the response order.")
_REUSE = F.DEFINE_bool("reuse_cache", False, "Continue the session in OUTPUT_DIR.")


def main(argv):
  del argv
  try:
    models = human_eval.load_models(_DIRS.value, _NAMES.value)
    session = human_eval.open_session(_OUT.value, models, _SAMPLES.value, _SEED.value,
                                      _REUSE.value)
  except (DatasetError, ValueError) as e:
    launch_flags.fail(str(e))
  write = lambda text: (sys.stdout.write(text), sys.stdout.flush())
  if not human_eval.rate(session, models, _OUT.value, input, write):
    return
  scores = human_eval.summarize(session, models, _OUT.value)
  for name, per in scores.items():
    print(f"{name}: " + ", ".join(f"{c} {v['mean']:.2f} (var {v['var']:.2f}, n={v['n']})"
                                  for c, v in per.items()))


if __name__ == "__main__":
  app.run(main)
