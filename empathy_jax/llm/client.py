"""A minimal OpenAI-compatible client over plain HTTP (the standard library): chat or
completion style, retries with exponential backoff and jitter on rate limits (429, honouring
Retry-After), server errors (5xx), timeouts and dropped connections; other errors end the run
with the server's message.

The API key goes to the configured host only: redirects are refused (urllib would resend the
key to wherever one points, and a POST's body would be dropped), a plain-http remote host is
warned about, and nothing the server sends back is printed with the key in it."""

from __future__ import annotations

import dataclasses
import http.client
import ipaddress
import json
import random
import socket
import sys
import time
import urllib.error
import urllib.parse
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


class RedirectRefused(LLMError):
  """The endpoint answered with a redirect; following it could send the key elsewhere."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):

  def redirect_request(self, req, fp, code, msg, headers, newurl):
    raise RedirectRefused(
        f"{req.full_url} redirected (HTTP {code}) to {newurl}: refused, since following it "
        f"would resend the API key there and drop the request; set --base_url to the address "
        f"that answers")


def is_loopback(url: str) -> bool:
  host = urllib.parse.urlsplit(url).hostname or ""
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


class LLMClient:
  def __init__(self, cfg: ClientConfig, sleep=time.sleep):
    self.cfg, self._sleep = cfg, sleep
    path = "/chat/completions" if cfg.style == "chat" else "/completions"
    self.url = cfg.base_url.rstrip("/") + path
    self._opener = urllib.request.build_opener(_NoRedirects)
    if cfg.api_key and cfg.base_url.startswith("http://") and not is_loopback(cfg.base_url):
      print(f"warning: --base_url {cfg.base_url} is plain http to another machine: the API key "
            f"(OPENAI_API_KEY) travels unencrypted; use https://", file=sys.stderr, flush=True)

  def _redact(self, text: str) -> str:
    """Server text as it may be shown: the key removed, should the server echo it back."""
    return text.replace(self.cfg.api_key, "<OPENAI_API_KEY>") if self.cfg.api_key else text

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
    with self._opener.open(req, timeout=self.cfg.timeout) as resp:
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
        detail = self._redact(e.read().decode("utf-8", "replace"))[:500]
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
      raise LLMError(f"{self.url}: unexpected reply "
                     f"{self._redact(json.dumps(reply))[:300]}") from e
