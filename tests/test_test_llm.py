"""`launch/test_llm.py` against a real local HTTP server that misbehaves: rate limits (429 with
Retry-After), server errors (500) and dropped connections on first attempts, slow answers, and
a SIGKILL of the launcher mid-run. Every example ends with its own answer, nothing cached is
asked again after a resume, and the metric files carry the original's keys."""

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ED_DIR, REPO
from empathy_jax.llm import prompts
from empathy_jax.llm.client import ClientConfig, LLMClient, LLMError

LAUNCHER = os.path.join(REPO, "launch", "test_llm.py")


def reply_to(prompt: str) -> str:
  """The fake model's answer: it echoes the speaker's last words, then runs on as the speaker
  (which the launcher must cut)."""
  last = [line for line in prompt.splitlines() if line.startswith("Speaker:")][-1]
  return f" I hear you: {' '.join(last.split()[1:4])}\nSpeaker: this part is not the reply"


class FakeLLM(http.server.ThreadingHTTPServer):
  """The k-th distinct prompt fails its first attempt with mode k % 4: 429, 500, a dropped
  connection, or not at all. `delay` slows every answer."""

  daemon_threads = True

  def __init__(self):
    super().__init__(("127.0.0.1", 0), _Handler)
    self.lock = threading.Lock()
    self.attempts: dict[str, int] = {}
    self.order: list[str] = []
    self.answered: list[str] = []
    self.requests: list[str] = []
    self.bodies: list[dict] = []  # every request body as it arrived, with its path
    self.delay = 0.0

  @property
  def url(self):
    return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(http.server.BaseHTTPRequestHandler):
  def log_message(self, *args):  # quiet
    pass

  def do_POST(self):  # pylint: disable=invalid-name
    server: FakeLLM = self.server
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    if body["model"] == "no-such-model":
      return self._json(404, {"error": {"message": "model not found"}})
    chat = self.path.endswith("/chat/completions")
    prompt = body["messages"][0]["content"] if chat else body["prompt"]
    with server.lock:
      server.requests.append(prompt)
      server.bodies.append({**body, "path": self.path})
      if prompt not in server.attempts:
        server.order.append(prompt)
      attempt = server.attempts[prompt] = server.attempts.get(prompt, 0) + 1
      mode = server.order.index(prompt) % 4
    if attempt == 1 and mode == 0:
      return self._json(429, {"error": {"message": "rate limited"}}, {"Retry-After": "0"})
    if attempt == 1 and mode == 1:
      return self._json(500, {"error": {"message": "internal error"}})
    if attempt == 1 and mode == 2:  # drop the connection without an answer
      self.connection.shutdown(socket.SHUT_RDWR)
      self.close_connection = True
      return None
    time.sleep(server.delay)
    text = reply_to(prompt)
    choice = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
    with server.lock:
      server.answered.append(prompt)
    return self._json(200, {"choices": [choice]})

  def do_GET(self):  # pylint: disable=invalid-name
    """Where a followed redirect would land: recorded, with the key it carried."""
    with self.server.lock:
      self.server.requests.append(f"GET {self.headers.get('Authorization')}")
    return self._json(404, {"error": {"message": "no GETs here"}})

  def _json(self, code, payload, headers=None):
    data = json.dumps(payload).encode()
    self.send_response(code)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    for k, v in (headers or {}).items():
      self.send_header(k, v)
    self.end_headers()
    self.wfile.write(data)
    return None


@pytest.fixture
def server():
  srv = FakeLLM()
  thread = threading.Thread(target=srv.serve_forever, daemon=True)
  thread.start()
  yield srv
  srv.shutdown()
  srv.server_close()


def _command(server, out, *extra):
  return [sys.executable, LAUNCHER, "--dataset_dir", ED_DIR, "--output_dir", str(out),
          "--base_url", server.url, "--model_name", "fake", "--max_examples", "12",
          "--backoff_seconds", "0.01", "--timeout", "10", *extra]


def _env():
  return dict(os.environ, JAX_PLATFORMS="cpu")


INSTRUCTION = ("The following is a conversation between two people. The speaker and listener "
               "are helpful, friendly, and empathetic.")


def chat_prompt(context):
  """The chat-style prompt written out here: the instruction, a blank line, the turns as
  `Speaker:`/`Listener:` lines (turns stripped) with the last turn the speaker's, then
  `Listener:`."""
  roles = ["Speaker" if (len(context) - 1 - j) % 2 == 0 else "Listener"
           for j in range(len(context))]
  lines = [f"{role}: {turn.strip()}" for role, turn in zip(roles, context)]
  return INSTRUCTION + "\n\n" + "\n".join(lines) + "\nListener:"


def _expected_outputs():
  """What each row must hold: the fake model's first line (the speaker's next turn cut), with
  the prompt built independently of the library's `build_prompt`."""
  from empathy_jax.data.dialogue_dataset import load_dialogue_split  # pylint: disable=import-outside-toplevel

  split = load_dialogue_split(os.path.join(ED_DIR, "test"), 1.0)
  outputs = []
  for i in range(12):
    last = [line for line in chat_prompt(split.contexts[i]).splitlines()
            if line.startswith("Speaker:")][-1]
    outputs.append("I hear you: " + " ".join(last.split()[1:4]))
  return outputs, split


def test_every_failure_is_retried_and_each_example_answered_once(server, tmp_path):
  out = tmp_path / "chat"
  done = subprocess.run(_command(server, out, "--concurrency", "3"), capture_output=True,
                        text=True, cwd=REPO, env=_env(), timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  expected, split = _expected_outputs()
  rows = json.load(open(out / "test_data.json"))
  assert [r["output"] for r in rows] == expected
  assert [r["target"] for r in rows] == split.targets[:12]
  assert [r["input"] for r in rows] == [chat_prompt(split.contexts[i]) for i in range(12)]
  assert set(server.requests) == {chat_prompt(split.contexts[i]) for i in range(12)}
  # The original's prompt, ending with the listener's label.
  assert rows[0]["input"].startswith(prompts.INSTRUCTION) and rows[0]["input"].endswith(
      "\nListener:")
  assert sorted(server.answered) == sorted(set(server.answered)) and len(server.answered) == 12
  assert len(server.requests) == 12 + 9  # 9 of the 12 failed once each and were retried
  metrics = json.load(open(out / "test_metrics.json"))
  words = [w for text in expected for w in text.split(" ")]
  assert metrics["dist-1"] == pytest.approx(len(set(words)) / len(words))
  assert {"bleu", "nist", "dist-2", "dist-4"} <= set(metrics)


def test_a_sigkilled_run_resumes_without_asking_again(server, tmp_path):
  out = tmp_path / "completion"
  server.delay = 0.3
  cmd = _command(server, out, "--concurrency", "2", "--api_style", "completion")
  proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
                          env=_env())
  cache = out / "llm_cache.jsonl"
  deadline = time.time() + 120
  while not (cache.exists() and cache.read_text().count("\n") >= 4):
    assert proc.poll() is None and time.time() < deadline, "no responses were cached"
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  assert proc.wait() == -signal.SIGKILL
  cached = [json.loads(line)["key"] for line in cache.read_text().splitlines() if line.strip()]
  assert 4 <= len(cached) < 12
  before = set(server.answered)
  server.requests.clear()
  server.delay = 0.0
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  expected, split = _expected_outputs()
  assert [r["output"] for r in json.load(open(out / "test_data.json"))] == expected
  prompt_of = {i: chat_prompt(split.contexts[i]) for i in range(12)}
  cached_prompts = {prompt_of[int(k.split(":")[0])] for k in cached}
  assert not cached_prompts & set(server.requests)  # nothing cached was asked again
  assert cached_prompts <= before


def test_an_unrecoverable_error_names_the_endpoint(server):
  client = LLMClient(ClientConfig(base_url=server.url, model_name="no-such-model",
                                  max_retries=3), sleep=lambda s: None)
  with pytest.raises(LLMError, match="HTTP 404.*model not found"):
    client.complete("hello")
  server_down = LLMClient(ClientConfig(base_url="http://127.0.0.1:9/v1", model_name="x",
                                       max_retries=2, timeout=2), sleep=lambda s: None)
  with pytest.raises(LLMError, match="gave up after 3 attempts"):
    server_down.complete("hello")


def test_the_original_prompt_equals_the_originals_code_on_every_test_context():
  """All 5,242 test contexts: `original_prompt` against a transcription of the original
  test_gpt3.py's loop (tests/original_reference.py), character for character."""
  import original_reference as orig

  contexts = json.load(open(os.path.join(ED_DIR, "test", "contexts.json")))
  assert len(contexts) == 5242
  mismatched = [i for i, c in enumerate(contexts) if prompts.original_prompt(c)
                != orig.gpt3_prompt(c)]
  assert not mismatched, mismatched[:5]
  # Contexts of an even number of turns ask for the speaker's reply, as the original does.
  asks_speaker = [c for c in contexts if prompts.original_prompt(c).endswith("\nSpeaker: ")]
  assert len(asks_speaker) == sum(len(c) % 2 == 0 for c in contexts) == 931


def test_original_style_sends_the_originals_request_and_stores_its_rows(server, tmp_path):
  """--prompt_style original: a completion request with the original's prompt and parameters
  (temperature 0.5, max_tokens 256, top_p 1, suffix "\\n"), and test_data.json rows as the
  original writes them (input = the prompt, the completion as it came)."""
  import original_reference as orig

  out = tmp_path / "original"
  done = subprocess.run(_command(server, out, "--prompt_style", "original", "--api_style",
                                 "completion", "--concurrency", "1"),
                        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  contexts = json.load(open(os.path.join(ED_DIR, "test", "contexts.json")))[:12]
  targets = json.load(open(os.path.join(ED_DIR, "test", "targets.json")))[:12]
  want = {p: orig.gpt3_request(p) for p in (orig.gpt3_prompt(c) for c in contexts)}
  answered = [b for b in server.bodies if b["prompt"] in server.answered]
  assert len({b["prompt"] for b in answered}) == 12
  for body in answered:
    assert body["path"] == "/v1/completions"
    sent = {k: v for k, v in body.items() if k not in ("model", "path")}
    expected = {k: v for k, v in want[body["prompt"]].items() if k != "engine"}
    assert sent == expected
  rows = json.load(open(out / "test_data.json"))
  for i, row in enumerate(rows):
    prompt = orig.gpt3_prompt(contexts[i])
    entry = orig.gpt3_test_entry(i, prompt, contexts[i], targets[i], reply_to(prompt))
    assert {k: row[k] for k in entry} == entry


def test_original_style_refuses_a_chat_endpoint(tmp_path):
  done = subprocess.run([sys.executable, LAUNCHER, "--dataset_dir", ED_DIR, "--output_dir",
                         str(tmp_path / "x"), "--base_url", "http://127.0.0.1:9/v1",
                         "--model_name", "m", "--prompt_style", "original"],
                        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=120)
  assert done.returncode == 1
  assert done.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "completion" in done.stderr.strip().splitlines()[-1]


class _Misbehaving(http.server.BaseHTTPRequestHandler):
  """Answers by the requested model's name: `redirect` sends a 302 (and a 307) to the address
  in `server.target`; `reflect` echoes the request's headers back in an error and a reply."""

  def log_message(self, *args):  # quiet
    pass

  def do_POST(self):  # pylint: disable=invalid-name
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    self.server.seen.append(dict(self.headers))
    if body["model"].startswith("redirect"):
      self.send_response(302 if body["model"] == "redirect" else 307)
      self.send_header("Location", self.server.target)
      self.send_header("Content-Length", "0")
      self.end_headers()
      return
    data = json.dumps({"headers": dict(self.headers)}).encode()
    self.send_response(400 if body["model"] == "reflect" else 200)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)


@pytest.fixture
def misbehaving(server):
  srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
  srv.daemon_threads = True
  srv.seen, srv.target = [], server.url + "/chat/completions"
  threading.Thread(target=srv.serve_forever, daemon=True).start()
  yield srv
  srv.shutdown()
  srv.server_close()


KEY = "sk-test-0123456789abcdef"


def _client(srv, model):
  return LLMClient(ClientConfig(base_url=f"http://127.0.0.1:{srv.server_address[1]}/v1",
                                model_name=model, api_key=KEY, max_retries=0))


@pytest.mark.parametrize("model", ["redirect", "redirect-307"])
def test_a_redirect_is_refused_and_the_key_stays_on_its_host(misbehaving, server, model):
  """The other server (another port: another origin) never hears from the client."""
  with pytest.raises(LLMError, match="redirected .* refused") as e:
    _client(misbehaving, model).complete("hello")
  assert server.requests == [] and server.bodies == []
  assert misbehaving.seen[0]["Authorization"] == f"Bearer {KEY}" and KEY not in str(e.value)


@pytest.mark.parametrize("model", ["reflect", "reflect-200"])
def test_a_server_that_echoes_headers_does_not_get_the_key_printed(misbehaving, model):
  with pytest.raises(LLMError) as e:
    _client(misbehaving, model).complete("hello")
  assert "<OPENAI_API_KEY>" in str(e.value) and KEY not in str(e.value)


def test_plain_http_to_another_machine_is_warned_about(capsys):
  from empathy_jax.llm.client import is_loopback

  LLMClient(ClientConfig(base_url="http://api.example.com/v1", model_name="m", api_key=KEY))
  assert "travels unencrypted" in capsys.readouterr().err
  for url in ("https://api.example.com/v1", "http://127.0.0.1:8000/v1", "http://localhost/v1",
              "http://[::1]:80/v1"):
    LLMClient(ClientConfig(base_url=url, model_name="m", api_key=KEY))
    assert capsys.readouterr().err == "", url
  assert not is_loopback("http://127.0.0.1.example.com/v1")
