#!/usr/bin/env python
"""Test-split responses from an external LLM behind an OpenAI-compatible HTTP API, scored with
the metric suite (the original's `test_gpt3`, for any such endpoint).

  OPENAI_API_KEY=... python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues \
      --base_url https://api.openai.com/v1 --model_name gpt-4o-mini --max_examples 100 \
      --output_dir outputs/gpt-4o-mini
  python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues \
      --base_url http://localhost:8000/v1 --model_name my-model --api_style completion \
      --output_dir outputs/local

  # The original's test_gpt3: its prompt, a completion endpoint, temperature 0.5, 256 tokens,
  # top_p 1, suffix "\n"; the completion stored as it came.
  python launch/test_llm.py --dataset_dir datasets/empathetic_dialogues --prompt_style original \
      --base_url http://localhost:8000/v1 --model_name my-model --api_style completion \
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

from absl import app, flags

from empathy_jax import launch_flags
from empathy_jax.errors import CheckpointError, DatasetError, OutputExistsError
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
_PSTYLE = F.DEFINE_enum("prompt_style", "chat", list(prompts.PROMPT_STYLES), "chat: our "
                        "prompt; original: the original test_gpt3's prompt and request "
                        "parameters (a completion endpoint).")
_TOKENS = F.DEFINE_integer("max_new_tokens", None, "max_tokens of each request (default 64; "
                           "256 with --prompt_style original).")
_TEMP = F.DEFINE_float("temperature", None, "Sampling temperature of the endpoint (default 0; "
                       "0.5 with --prompt_style original).")
_TOP_P = F.DEFINE_float("top_p", None, "top_p of each request (default: not sent; 1.0 with "
                        "--prompt_style original).")
_CONC = F.DEFINE_integer("concurrency", 4, "Requests in flight at once.")
_RETRIES = F.DEFINE_integer("max_retries", 8, "Retries of a failing request.")
_TIMEOUT = F.DEFINE_float("timeout", 60.0, "Seconds before a request counts as failed.")
_BACKOFF = F.DEFINE_float("backoff_seconds", 1.0, "First retry wait (doubles each retry).")
_BATCH = F.DEFINE_integer("batch_size", 32, "Classifier batch size.")
_OVERWRITE = launch_flags.define_overwrite_flag()
_SCORES = launch_flags.define_metric_flags()
F.adopt_module_key_flags(launch_flags)
# Request parameters when not given: the original test_gpt3's argparse defaults and its
# `suffix="\n"`, or ours.
ORIGINAL_REQUEST = dict(max_tokens=256, temperature=0.5, top_p=1.0, suffix="\n")
CHAT_REQUEST = dict(max_tokens=64, temperature=0.0, top_p=None, suffix=None)


def main(argv):
  del argv
  original = _PSTYLE.value == "original"
  defaults = ORIGINAL_REQUEST if original else CHAT_REQUEST
  pick = lambda flag, key: defaults[key] if flag.value is None else flag.value
  try:
    client = ClientConfig(base_url=_URL.value, model_name=_NAME.value,
                          api_key=os.environ.get("OPENAI_API_KEY"), style=_STYLE.value,
                          max_tokens=pick(_TOKENS, "max_tokens"),
                          temperature=pick(_TEMP, "temperature"), top_p=pick(_TOP_P, "top_p"),
                          suffix=defaults["suffix"], timeout=_TIMEOUT.value,
                          max_retries=_RETRIES.value, backoff_seconds=_BACKOFF.value)
    cfg = LLMTestConfig(dataset_dir=_DATA.value, output_dir=_OUT.value, client=client,
                        scores=_SCORES(_BATCH.value), split=_SPLIT.value,
                        max_examples=_MAX.value, data_erasure_level=_ERASURE.value,
                        prompt_template=_TEMPLATE.value, concurrency=_CONC.value,
                        prompt_style=_PSTYLE.value, overwrite=_OVERWRITE.value)
  except ValueError as e:
    launch_flags.fail(str(e))
  try:
    metrics = run_test_llm(cfg)
  except (DatasetError, CheckpointError, LLMError, OutputExistsError) as e:
    launch_flags.fail(str(e))
  print(format_table(metrics))


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
