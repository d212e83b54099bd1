"""`launch/test_llm.py`: test-split responses from an external LLM, cached and resumable, then
the metric suite (the original's `test_gpt3`, for any OpenAI-compatible endpoint)."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os

from empathy_jax.evaluation import results, suite
from empathy_jax.llm import prompts
from empathy_jax.llm.cache import ResponseCache, prompt_key
from empathy_jax.llm.client import ClientConfig, LLMClient

CACHE_FILE = "llm_cache.jsonl"


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
    from empathy_jax import preflight  # pylint: disable=import-outside-toplevel

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

  from empathy_jax.data.dialogue_dataset import load_dialogue_split, split_dir  # pylint: disable=import-outside-toplevel

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
