#!/usr/bin/env python
"""Test-split responses from an external LLM behind an OpenAI-compatible HTTP API, scored with
the metric suite (the original's `test_gpt3`, for any such endpoint).

  OPENAI_API_KEY=... python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues \
      --base_url https://api.openai.com/v1 --model_name gpt-4o-mini --max_examples 100 \
      --output_dir outputs/gpt-4o-mini
  python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues \
      --base_url http://localhost:8000/v1 --model_name my-model --api_style completion \
      --output_dir outputs/local

The prompt is the original's (an instruction, `Speaker:`/`Listener:` lines, then `Listener:`);
--prompt_template replaces it (placeholders {instruction}, {dialogue}, {next_role}). Chat style
sends it as one user message. Transient failures (429, 5xx, timeouts, dropped connections) are
retried with exponential backoff; every response is cached in OUTPUT_DIR/llm_cache.jsonl as it
arrives, and rerunning the command asks only for what is missing. Writes test_data.json,
test_metrics.json and classwise_test_metrics.json (the original's keys; no perplexity or BOW,
which need the model's weights).
"""

import os

from absl import app, flags

from empathy_jax import launch_flags
from empathy_jax.errors import CheckpointError, DatasetError
from empathy_jax.evaluation.suite import format_table
from empathy_jax.llm import prompts
from empathy_jax.llm.client import ClientConfig, LLMError
from empathy_jax.llm.runner import LLMTestConfig, run_test_llm

F = flags
_DATA = F.DEFINE_string("dataset_dir", None, "Dialogue dataset folder.", required=True)
_OUT = F.DEFINE_string("output_dir", None, "Where responses, cache and results go.",
                       required=True)
_SPLIT = F.DEFINE_string("split", "test", "Split to answer.")
_MAX = F.DEFINE_integer("max_examples", None, "Answer only the first N rows.")
_ERASURE = F.DEFINE_float("data_erasure_level", 1.0, "Erased fraction of instructions.")
_URL = F.DEFINE_string("base_url", None, "The API's base URL, e.g. https://api.openai.com/v1.",
                       required=True)
_NAME = F.DEFINE_string("model_name", None, "The endpoint's model name.", required=True)
_STYLE = F.DEFINE_enum("api_style", "chat", ["chat", "completion"], "chat: /chat/completions "
                       "(the prompt as one user message); completion: /completions.")
_TEMPLATE = F.DEFINE_string("prompt_template", prompts.TEMPLATE, "Prompt template with "
                            "{instruction}, {dialogue} and {next_role}.")
_TOKENS = F.DEFINE_integer("max_new_tokens", 64, "max_tokens of each request.")
_TEMP = F.DEFINE_float("temperature", 0.0, "Sampling temperature of the endpoint.")
_CONC = F.DEFINE_integer("concurrency", 4, "Requests in flight at once.")
_RETRIES = F.DEFINE_integer("max_retries", 8, "Retries of a failing request.")
_TIMEOUT = F.DEFINE_float("timeout", 60.0, "Seconds before a request counts as failed.")
_BACKOFF = F.DEFINE_float("backoff_seconds", 1.0, "First retry wait (doubles each retry).")
_BATCH = F.DEFINE_integer("batch_size", 32, "Classifier batch size.")
_SCORES = launch_flags.define_metric_flags()
F.adopt_module_key_flags(launch_flags)


def main(argv):
  del argv
  try:
    client = ClientConfig(base_url=_URL.value, model_name=_NAME.value,
                          api_key=os.environ.get("OPENAI_API_KEY"), style=_STYLE.value,
                          max_tokens=_TOKENS.value, temperature=_TEMP.value,
                          timeout=_TIMEOUT.value, max_retries=_RETRIES.value,
                          backoff_seconds=_BACKOFF.value)
    cfg = LLMTestConfig(dataset_dir=_DATA.value, output_dir=_OUT.value, client=client,
                        scores=_SCORES(_BATCH.value), split=_SPLIT.value,
                        max_examples=_MAX.value, data_erasure_level=_ERASURE.value,
                        prompt_template=_TEMPLATE.value, concurrency=_CONC.value)
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  try:
    metrics = run_test_llm(cfg)
  except (DatasetError, CheckpointError, LLMError) as e:
    launch_flags.fail(str(e))
  print(format_table(metrics))


if __name__ == "__main__":
  app.run(main)
