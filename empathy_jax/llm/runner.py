"""`launch/test_llm.py`: test-split responses from an external LLM, cached and resumable, then
the metric suite (the original's `test_gpt3`, for any OpenAI-compatible endpoint)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

from empathy_jax import preflight
from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir
from empathy_jax.evaluation import results, suite
from empathy_jax.llm import prompts
from empathy_jax.llm.cache import ResponseCache, prompt_key
from empathy_jax.llm.client import ClientConfig, LLMClient
from empathy_jax.settings import setting

CACHE_FILE = "llm_cache.jsonl"
# Request parameters when not given: the original test_gpt3's argparse defaults and its
# `suffix="\n"`, or ours.
ORIGINAL_REQUEST = dict(max_tokens=256, temperature=0.5, top_p=1.0, suffix="\n")
CHAT_REQUEST = dict(max_tokens=64, temperature=0.0, top_p=None, suffix=None)


@dataclasses.dataclass(frozen=True, kw_only=True)
class LLMLaunchConfig:
  """`launch/test_llm.py`'s settings (its flags); `test_config` turns them into the run's
  `LLMTestConfig`, with the request defaults of the prompt style."""

  dataset_dir: str | None = setting(None, "Dialogue dataset folder (required).")
  output_dir: str | None = setting(None, "Where responses, cache and results go (required).")
  split: str = setting("test", "Split to answer.")
  max_examples: int | None = setting(None, "Answer only the first N rows.")
  data_erasure_level: float = setting(1.0, "Erased fraction of instructions.")
  base_url: str | None = setting(None, "The API's base URL, e.g. https://api.openai.com/v1 "
                                 "(required).")
  model_name: str | None = setting(None, "The endpoint's model name (required).")
  api_style: str = setting("chat", "chat: /chat/completions (the prompt as one user message); "
                           "completion: /completions.", ("chat", "completion"))
  prompt_template: str = setting(prompts.TEMPLATE, "Prompt template with {instruction}, "
                                 "{dialogue} and {next_role}.")
  prompt_style: str = setting("chat", "chat: our prompt; original: the original test_gpt3's "
                              "prompt and request parameters (a completion endpoint).",
                              tuple(prompts.PROMPT_STYLES))
  max_new_tokens: int | None = setting(None, "max_tokens of each request (default 64; 256 with "
                                       "--prompt_style original).")
  temperature: float | None = setting(None, "Sampling temperature of the endpoint (default 0; "
                                      "0.5 with --prompt_style original).")
  top_p: float | None = setting(None, "top_p of each request (default: not sent; 1.0 with "
                                "--prompt_style original).")
  concurrency: int = setting(4, "Requests in flight at once.")
  max_retries: int = setting(8, "Retries of a failing request.")
  timeout: float = setting(60.0, "Seconds before a request counts as failed.")
  backoff_seconds: float = setting(1.0, "First retry wait (doubles each retry).")
  batch_size: int = setting(32, "Classifier batch size.")

  def test_config(self, api_key: str | None, scores: suite.ScoreConfig,
                  overwrite: bool) -> "LLMTestConfig":
    """The run's config; ValueError names the flag of a missing or bad value."""
    for name in ("dataset_dir", "output_dir", "base_url", "model_name"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    defaults = ORIGINAL_REQUEST if self.prompt_style == "original" else CHAT_REQUEST
    pick = lambda given, key: defaults[key] if given is None else given
    client = ClientConfig(base_url=self.base_url, model_name=self.model_name, api_key=api_key,
                          style=self.api_style,
                          max_tokens=pick(self.max_new_tokens, "max_tokens"),
                          temperature=pick(self.temperature, "temperature"),
                          top_p=pick(self.top_p, "top_p"), suffix=defaults["suffix"],
                          timeout=self.timeout, max_retries=self.max_retries,
                          backoff_seconds=self.backoff_seconds)
    return LLMTestConfig(dataset_dir=self.dataset_dir, output_dir=self.output_dir,
                         client=client, scores=scores, split=self.split,
                         max_examples=self.max_examples,
                         data_erasure_level=self.data_erasure_level,
                         prompt_template=self.prompt_template, concurrency=self.concurrency,
                         prompt_style=self.prompt_style, overwrite=overwrite)


@dataclasses.dataclass(frozen=True)
class LLMTestConfig:
  dataset_dir: str
  output_dir: str
  client: ClientConfig
  scores: suite.ScoreConfig = suite.ScoreConfig()
  split: str = "test"
  max_examples: int | None = None
  data_erasure_level: float = 1.0
  prompt_template: str = prompts.TEMPLATE
  concurrency: int = 4
  prompt_style: str = "chat"
  overwrite: bool = False

  def __post_init__(self):
    if self.prompt_style not in prompts.PROMPT_STYLES:
      raise ValueError(f"--prompt_style must be one of {prompts.PROMPT_STYLES}, got "
                       f"{self.prompt_style!r}")
    if self.prompt_style == "original" and self.client.style != "completion":
      raise ValueError("--prompt_style original asks a completion endpoint, as the original "
                       "does (--api_style completion)")
    if self.prompt_style == "original" and self.prompt_template != prompts.TEMPLATE:
      raise ValueError("--prompt_template applies to --prompt_style chat only")
    if self.concurrency < 1:
      raise ValueError(f"--concurrency must be >= 1, got {self.concurrency}")
    if self.max_examples is not None and self.max_examples < 1:
      raise ValueError(f"--max_examples must be >= 1, got {self.max_examples}")
    prompts.check_template(self.prompt_template)

  def check_inputs(self) -> None:
    preflight.check_dialogue_dataset(self.dataset_dir, (self.split,))
    self.scores.check()
    preflight.check_writable(self.output_dir)
    results.check_free(self.output_dir, self.provenance(), self.overwrite)

  def provenance(self) -> dict:
    """The endpoint, its request settings, the prompts and the rows: what the answers depend
    on (never the API key)."""
    client = {k: v for k, v in dataclasses.asdict(self.client).items()
              if k in ("base_url", "model_name", "style", "max_tokens", "temperature", "top_p",
                       "suffix")}
    return results.provenance(
        "test_llm.py", model=self.client.model_name, client=client,
        dataset_dir=os.path.abspath(self.dataset_dir), split=self.split,
        max_examples=self.max_examples, data_erasure_level=self.data_erasure_level,
        prompt_style=self.prompt_style, prompt_template=self.prompt_template,
        scores=dataclasses.asdict(self.scores))


def run_test_llm(cfg: LLMTestConfig, client: LLMClient | None = None) -> dict:
  """Asks the endpoint for every example not in the cache (`concurrency` requests at a time,
  each answer cached as it arrives), then writes test_data.json, test_metrics.json and
  classwise_test_metrics.json with the original's keys. Returns the metrics."""
  from tqdm import tqdm  # pylint: disable=import-outside-toplevel


  cfg.check_inputs()
  split = load_dialogue_split(split_dir(cfg.dataset_dir, cfg.split), cfg.data_erasure_level)
  n = len(split) if cfg.max_examples is None else min(cfg.max_examples, len(split))
  client = client or LLMClient(cfg.client)
  os.makedirs(cfg.output_dir, exist_ok=True)
  cache = ResponseCache(os.path.join(cfg.output_dir, CACHE_FILE))
  original = cfg.prompt_style == "original"
  texts = [prompts.original_prompt(split.contexts[i]) if original
           else prompts.build_prompt(split.contexts[i], cfg.prompt_template) for i in range(n)]
  keys = [prompt_key(i, texts[i], cfg.client.model_name) for i in range(n)]
  pending = [i for i in range(n) if cache.get(keys[i]) is None]
  if len(pending) < n:
    print(f"{n - len(pending)} of {n} responses from the cache {cache.path}")
  with tqdm(total=n, initial=n - len(pending), desc="responses", dynamic_ncols=True) as bar, \
      concurrent.futures.ThreadPoolExecutor(cfg.concurrency) as pool:
    futures = {pool.submit(client.complete, texts[i]): i for i in pending}
    try:
      for done in concurrent.futures.as_completed(futures):
        cache.put(keys[futures[done]], done.result())
        bar.update(1)
    except BaseException:
      for f in futures:
        f.cancel()  # requests not started yet; those in flight finish and are dropped
      raise
  # The original stores the completion as it came; the chat style keeps the reply's first turn.
  tidy = (lambda text: text) if original else prompts.clean_response
  records = [{"id": i, "input": texts[i], "context": split.contexts[i],
              "target": split.targets[i], "output": tidy(cache.get(keys[i]))}
             for i in range(n)]
  records, metrics, classwise = suite.score(records, cfg.scores)
  results.write(cfg.output_dir, records, metrics, classwise, cfg.provenance())
  return metrics
