#!/usr/bin/env python
"""Test-split responses from an external LLM behind an OpenAI-compatible HTTP API, scored with
the metric suite (the original's `test_gpt3`, for any such endpoint).

  OPENAI_API_KEY=... python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues \\
      --base_url https://api.openai.com/v1 --model_name gpt-4o-mini --max_examples 100 \\
      --output_dir outputs/gpt-4o-mini
  python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues \\
      --base_url http://localhost:8000/v1 --model_name my-model --api_style completion \\
      --output_dir outputs/local

  # The original's test_gpt3: its prompt, a completion endpoint, temperature 0.5, 256 tokens,
  # top_p 1, suffix "\n"; the completion stored as it came.
  python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues --prompt_style original \\
      --base_url http://localhost:8000/v1 --model_name my-model --api_style completion \\
      --output_dir outputs/original_style

--prompt_style chat (the default): the instruction, `Speaker:`/`Listener:` lines counted back
from the last turn, then `Listener:`; --prompt_template replaces it (placeholders
{instruction}, {dialogue}, {next_role}); chat style sends it as one user message, and the reply
is cut at the next turn the model writes. --prompt_style original: the original's prompt and
request parameters (differences: docs/differences.md). Transient failures (429, 5xx, timeouts, dropped connections) are
retried with exponential backoff; every response is cached in OUTPUT_DIR/llm_cache.jsonl as it
arrives, and rerunning the command asks only for what is missing. Writes test_data.json,
test_metrics.json and classwise_test_metrics.json (the original's keys; no perplexity or BOW,
which need the model's weights).
"""

import os

from absl import app

from empathy_jax import launch_flags, settings
from empathy_jax.errors import CheckpointError, DatasetError, OutputExistsError
from empathy_jax.evaluation.suite import format_table
from empathy_jax.llm.client import LLMError
from empathy_jax.llm.runner import LLMLaunchConfig, run_test_llm

settings.define_flags(LLMLaunchConfig)  # every setting, from its field
_OVERWRITE = launch_flags.define_overwrite_flag()
_SCORES = launch_flags.define_metric_flags()
launch_flags.list_in_help()


def main(argv):
  del argv
  try:
    given = settings.from_flags(LLMLaunchConfig)
    cfg = given.test_config(os.environ.get("OPENAI_API_KEY"), _SCORES(given.batch_size),
                            _OVERWRITE.value)
  except ValueError as e:
    launch_flags.fail(str(e))
  try:
    metrics = run_test_llm(cfg)
  except (DatasetError, CheckpointError, LLMError, OutputExistsError) as e:
    launch_flags.fail(str(e))
  print(format_table(metrics))


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
