"""The raters' web page and its JSON API (standard library only; no external asset).

  GET  /api/next?rater=TOKEN      200 {"sample_id", "context", "responseA", "responseB"},
                                  204 when nothing is left for the rater, 403 unknown token
  GET  /api/progress?rater=TOKEN  200 {"answered", "left"}
  POST /api/rate  {"rater", "sample_id", "ratings": [empathy, relevance, fluency]}
                                  200 once the answer is on disk (also for a repeat of an
                                  answer already counted), 400 bad body, 403 unknown token,
                                  404 unknown sample, 409 a sample not handed to this rater

The token travels in the request (query or body), never in a cookie, so another site cannot
make a rater's browser answer for them.
"""

from __future__ import annotations

import http.server
import importlib.resources
import json
import sys
import time
import urllib.parse

from empathy_jax.survey import store as S

MAX_BODY_BYTES = 4096
_PAGES = {"/": ("index.html", "text/html"), "/survey.js": ("survey.js", "text/javascript"),
          "/survey.css": ("survey.css", "text/css")}
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
            "Cache-Control": "no-store"}
_RATE_STATUS = {S.COUNTED: 200, S.ALREADY_COUNTED: 200, S.NOT_HANDED_TO_YOU: 409,
                S.NO_SUCH_SAMPLE: 404}


def valid_ratings(ratings) -> bool:
  """Three integers (not booleans) on the original's scale, -2..2."""
  return (isinstance(ratings, list) and len(ratings) == 3
          and all(type(r) is int and -2 <= r <= 2 for r in ratings))


def page(name: str) -> bytes:
  """A file of the raters' page, from the installed package."""
  return importlib.resources.files("empathy_jax.survey").joinpath("page", name).read_bytes()


class _Handler(http.server.BaseHTTPRequestHandler):
  store: S.SurveyStore
  lease_seconds: float
  protocol_version = "HTTP/1.1"
  timeout = 15  # seconds a client may stay silent (a slow client holds one thread at most that long)
  _body_read = False

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    del format, args  # raters' requests are not logged (tokens travel in queries)

  def _send(self, code: int, body: bytes = b"", kind: str = "application/json"):
    if not self._body_read and (self.headers.get("Content-Length", "0") != "0"
                                or "Transfer-Encoding" in self.headers):
      self.close_connection = True  # an unread body must not be taken for the next request
    self.send_response(code)
    if self.close_connection:
      self.send_header("Connection", "close")
    for key, value in _HEADERS.items():
      self.send_header(key, value)
    if body:
      self.send_header("Content-Type", f"{kind}; charset=utf-8")
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body)

  def _json(self, code: int, value) -> None:
    self._send(code, json.dumps(value, ensure_ascii=False).encode("utf-8"))

  def _error(self, code: int, reason: str) -> None:
    self._json(code, {"error": reason})

  def _guarded(self, handler) -> None:
    """Runs a request's handler; a fault answers 500 (the connection closed), not a stack
    trace in place of an answer."""
    self._body_read = False
    try:
      handler()
    except (TimeoutError, ConnectionError):
      self.close_connection = True
    except Exception as e:  # pylint: disable=broad-except
      self.log_error("%s: %s", type(e).__name__, e)
      self.close_connection = True
      try:
        self._error(500, "the server failed to answer this request")
      except OSError:
        pass

  def do_GET(self):  # pylint: disable=invalid-name
    self._guarded(self._get)

  def do_POST(self):  # pylint: disable=invalid-name
    self._guarded(self._post)

  def log_error(self, format, *args):  # pylint: disable=redefined-builtin
    print(f"survey server: {format % args}", file=sys.stderr, flush=True)

  def _get(self):
    url = urllib.parse.urlsplit(self.path)
    if url.path in _PAGES:
      name, kind = _PAGES[url.path]
      return self._send(200, page(name), kind)
    if url.path not in ("/api/next", "/api/progress"):
      return self._error(404, "no such page")
    token = urllib.parse.parse_qs(url.query).get("rater", [""])[0]
    rater = self.store.rater(token)
    if rater is None:
      return self._error(403, "unknown rater token")
    if url.path == "/api/progress":
      return self._json(200, self.store.progress(rater))
    record = self.store.next_sample(rater, time.time(), self.lease_seconds)
    if record is None:
      return self._send(204)
    s = record["sample"]
    return self._json(200, {"sample_id": record["id"], "context": s["context"],
                            "responseA": s["responseA"], "responseB": s["responseB"]})

  def _post(self):
    if urllib.parse.urlsplit(self.path).path != "/api/rate":
      return self._error(404, "no such page")
    if "Transfer-Encoding" in self.headers:
      return self._error(411, "send the body with a Content-Length")
    try:
      length = int(self.headers.get("Content-Length", ""))
    except ValueError:
      self.close_connection = True
      return self._error(411, "a Content-Length is required")
    if not 0 <= length <= MAX_BODY_BYTES:
      self.close_connection = True  # the body is not read
      return self._error(413, f"the body is limited to {MAX_BODY_BYTES} bytes")
    raw = self.rfile.read(length)
    self._body_read = True
    try:
      body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
      return self._error(400, "the body must be a JSON object")
    if not isinstance(body, dict):
      return self._error(400, "the body must be a JSON object")
    rater = self.store.rater(body.get("rater", ""))
    if rater is None:
      return self._error(403, "unknown rater token")
    if not isinstance(body.get("sample_id"), str):
      return self._error(400, "sample_id must be a string")
    if not valid_ratings(body.get("ratings")):
      return self._error(400, "ratings must be three integers from -2 to 2")
    outcome = self.store.rate(rater, body["sample_id"], body["ratings"], time.time())
    return self._json(_RATE_STATUS[outcome], {"result": outcome})

  def do_PUT(self):  # pylint: disable=invalid-name
    self._error(405, "only GET and POST")

  do_DELETE = do_PATCH = do_PUT


def make_server(store: S.SurveyStore, host: str, port: int, lease_seconds: float
                ) -> http.server.ThreadingHTTPServer:
  """A threaded server bound to host:port (port 0: any free port; see `server_address`)."""
  handler = type("SurveyHandler", (_Handler,), {"store": store, "lease_seconds": lease_seconds})
  server = http.server.ThreadingHTTPServer((host, port), handler)
  server.daemon_threads = True
  return server
