"""A minimal OpenAI-compatible client over plain HTTP (the standard library): chat or
completion style, retries with exponential backoff and jitter on rate limits (429, honouring
Retry-After), server errors (5xx), timeouts and dropped connections; other errors end the run
with the server's message."""

from __future__ import annotations

import dataclasses
import http.client
import json
import random
import socket
import time
import urllib.error
import urllib.request

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


class LLMError(RuntimeError):
  """A request that cannot succeed (bad key, bad model name, retries exhausted)."""


@dataclasses.dataclass(frozen=True)
class ClientConfig:
  base_url: str
  model_name: str
  api_key: str | None = None
  style: str = "chat"  # chat: /chat/completions; completion: /completions
  max_tokens: int = 64
  temperature: float = 0.0
  top_p: float | None = None  # sent only when set
  suffix: str | None = None  # completion style only (the original sends "\n")
  timeout: float = 60.0
  max_retries: int = 8
  backoff_seconds: float = 1.0  # the first wait; doubles each retry, capped at 60 s

  def __post_init__(self):
    if self.style not in ("chat", "completion"):
      raise ValueError(f"--api_style must be chat or completion, got {self.style!r}")
    if not self.base_url.startswith(("http://", "https://")):
      raise ValueError(f"--base_url must start with http:// or https://, got {self.base_url!r}")
    if self.max_retries < 0 or self.max_tokens < 1 or self.timeout <= 0:
      raise ValueError("--max_retries must be >= 0, --max_tokens >= 1 and --timeout > 0")
    if not 0.0 <= self.temperature <= 2.0:
      raise ValueError(f"--temperature must be in [0, 2], got {self.temperature}")
    if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
      raise ValueError(f"--top_p must be in (0, 1], got {self.top_p}")
    if self.suffix is not None and self.style != "completion":
      raise ValueError("a suffix is sent only to a completion endpoint (--api_style completion)")


class LLMClient:
  def __init__(self, cfg: ClientConfig, sleep=time.sleep):
    self.cfg, self._sleep = cfg, sleep
    path = "/chat/completions" if cfg.style == "chat" else "/completions"
    self.url = cfg.base_url.rstrip("/") + path

  def _body(self, prompt: str) -> dict:
    body = {"model": self.cfg.model_name, "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature}
    if self.cfg.top_p is not None:
      body["top_p"] = self.cfg.top_p
    if self.cfg.suffix is not None:
      body["suffix"] = self.cfg.suffix
    if self.cfg.style == "chat":  # the whole prompt as one user message
      body["messages"] = [{"role": "user", "content": prompt}]
    else:
      body["prompt"] = prompt
    return body

  def _post(self, body: dict) -> dict:
    headers = {"Content-Type": "application/json"}
    if self.cfg.api_key:
      headers["Authorization"] = f"Bearer {self.cfg.api_key}"
    req = urllib.request.Request(self.url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(req, timeout=self.cfg.timeout) as resp:
      return json.loads(resp.read().decode("utf-8"))

  def complete(self, prompt: str) -> str:
    """The generated text; retries transient failures, raises `LLMError` otherwise."""
    body = self._body(prompt)
    wait = self.cfg.backoff_seconds
    for attempt in range(self.cfg.max_retries + 1):
      retry_after = None
      try:
        return self._text(self._post(body))
      except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace")[:500]
        if e.code not in RETRY_STATUS:
          raise LLMError(f"{self.url} answered HTTP {e.code}: {detail}") from e
        problem = f"HTTP {e.code}"
        header = e.headers.get("Retry-After") if e.headers else None
        if header:
          try:
            retry_after = float(header)
          except ValueError:
            pass
      except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
              TimeoutError, json.JSONDecodeError) as e:
        problem = f"{type(e).__name__}: {e}"
      if attempt == self.cfg.max_retries:
        raise LLMError(f"{self.url}: gave up after {attempt + 1} attempts (last: {problem})")
      delay = retry_after if retry_after is not None else wait * (0.5 + random.random() / 2)
      self._sleep(min(delay, 60.0))
      wait = min(wait * 2, 60.0)
    raise AssertionError("unreachable")

  def _text(self, reply: dict) -> str:
    try:
      choice = reply["choices"][0]
      return choice["message"]["content"] if self.cfg.style == "chat" else choice["text"]
    except (KeyError, IndexError, TypeError) as e:
      raise LLMError(f"{self.url}: unexpected reply {json.dumps(reply)[:300]}") from e
