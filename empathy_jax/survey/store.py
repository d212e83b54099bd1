"""Where the survey's samples, raters and answers live: one interface (`SurveyStore`), and
SQLite in the survey folder behind it.

A sample is PENDING until a rater asks for one; it is then IN_PROGRESS for that rater under
a lease, and returns to the pool when the lease runs out unanswered; an answer makes it
COMPLETE. An answer is acknowledged only after its transaction is on disk (WAL with
synchronous=FULL), so a killed server loses no acknowledged answer; a rater who sends the
same answer again (a retry after a lost reply) is told it counted, and it counts once.

A shared server database for a survey run from several machines implements the same methods
(`SELECT ... FOR UPDATE SKIP LOCKED` in PostgreSQL does what `BEGIN IMMEDIATE` does here).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import sqlite3

from empathy_jax.errors import DatasetError, Problem
from empathy_jax.survey.tables import COMPLETE, IN_PROGRESS, PENDING

DB_FILE = "survey.sqlite"

# What `rate` says about an answer.
COUNTED, ALREADY_COUNTED, NOT_HANDED_TO_YOU, NO_SUCH_SAMPLE = (
    "counted", "already counted", "not handed to you", "no such sample")


class SurveyStore(abc.ABC):
  """The survey's database, as the launcher and the server use it."""

  @abc.abstractmethod
  def add_samples(self, samples: list[dict]) -> None:
    """Adds PENDING samples (the original's records), all or none."""

  @abc.abstractmethod
  def pushed_context_ids(self) -> set[int]:
    """The context ids of every sample pushed so far."""

  @abc.abstractmethod
  def add_rater(self, name: str) -> str:
    """A new rater's token (shown once; only its hash is kept)."""

  @abc.abstractmethod
  def rater(self, token: str) -> int | None:
    """The rater a token belongs to, or None."""

  @abc.abstractmethod
  def next_sample(self, rater: int, now: float, lease_seconds: float) -> dict | None:
    """The sample this rater holds unanswered, else a new one from the pool (leased to them),
    else None."""

  @abc.abstractmethod
  def rate(self, rater: int, sample_id: str, ratings: list[int], now: float) -> str:
    """Records an answer; returns COUNTED, ALREADY_COUNTED, NOT_HANDED_TO_YOU or
    NO_SUCH_SAMPLE. Durable before it returns COUNTED."""

  @abc.abstractmethod
  def progress(self, rater: int) -> dict:
    """{"answered": by this rater, "left": samples not yet answered by anyone}."""

  @abc.abstractmethod
  def completed(self) -> list[dict]:
    """Every answered sample in the original's survey_results format, in answer order."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  context_id INTEGER NOT NULL,
  record TEXT NOT NULL,
  status INTEGER NOT NULL,
  rater INTEGER,
  leased_until REAL,
  ratings TEXT,
  answer_seq INTEGER UNIQUE);
CREATE TABLE IF NOT EXISTS raters (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  secret_sha256 TEXT NOT NULL);
"""


def _digest(secret: str) -> str:
  return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class SqliteStore(SurveyStore):
  """SQLite in one file; a connection per call, so any thread may call any method."""

  def __init__(self, path: str):
    self.path = path
    with self._connect() as db:
      db.execute("PRAGMA journal_mode=WAL")
      db.executescript(_SCHEMA)

  @contextlib.contextmanager
  def _connect(self):
    db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
    try:
      db.execute("PRAGMA synchronous=FULL")
      yield db
    finally:
      db.close()

  @contextlib.contextmanager
  def _transaction(self):
    """One write transaction; committed (and on disk) when the block ends without error."""
    with self._connect() as db:
      db.execute("BEGIN IMMEDIATE")
      try:
        yield db
      except BaseException:
        db.execute("ROLLBACK")
        raise
      db.execute("COMMIT")

  def add_samples(self, samples):
    with self._transaction() as db:
      db.executemany(
          "INSERT INTO samples (id, context_id, record, status) VALUES (?, ?, ?, ?)",
          [(s["id"], s["sample"]["id"], json.dumps({k: v for k, v in s.items() if k != "status"}),
            PENDING) for s in samples])

  def pushed_context_ids(self):
    with self._connect() as db:
      return {row[0] for row in db.execute("SELECT DISTINCT context_id FROM samples")}

  def add_rater(self, name):
    secret = secrets.token_urlsafe(24)
    with self._transaction() as db:
      rater = db.execute("INSERT INTO raters (name, secret_sha256) VALUES (?, ?)",
                         (name, _digest(secret))).lastrowid
    return f"{rater}.{secret}"

  def rater(self, token):
    rater, _, secret = str(token).partition(".")
    if not (rater.isascii() and rater.isdigit() and len(rater) <= 18 and secret):
      return None
    with self._connect() as db:
      row = db.execute("SELECT secret_sha256 FROM raters WHERE id = ?", (int(rater),)).fetchone()
    # Compared in constant time; an unknown rater costs the same comparison.
    expected = row[0] if row else _digest(secrets.token_urlsafe(24))
    return int(rater) if hmac.compare_digest(expected, _digest(secret)) and row else None

  def next_sample(self, rater, now, lease_seconds):
    with self._transaction() as db:
      row = db.execute("SELECT seq, record FROM samples WHERE status = ? AND rater = ? "
                       "ORDER BY seq LIMIT 1", (IN_PROGRESS, rater)).fetchone()
      if row is None:
        row = db.execute("SELECT seq, record FROM samples WHERE status = ? OR (status = ? AND "
                         "leased_until < ?) ORDER BY seq LIMIT 1",
                         (PENDING, IN_PROGRESS, now)).fetchone()
      if row is None:
        return None
      db.execute("UPDATE samples SET status = ?, rater = ?, leased_until = ? WHERE seq = ?",
                 (IN_PROGRESS, rater, now + lease_seconds, row[0]))
    return json.loads(row[1])

  def rate(self, rater, sample_id, ratings, now):
    with self._transaction() as db:
      row = db.execute("SELECT status, rater FROM samples WHERE id = ?",
                       (sample_id,)).fetchone()
      if row is None:
        return NO_SUCH_SAMPLE
      status, holder = row
      if status == COMPLETE:
        return ALREADY_COUNTED if holder == rater else NOT_HANDED_TO_YOU
      if status != IN_PROGRESS or holder != rater:
        return NOT_HANDED_TO_YOU
      order = db.execute("SELECT COALESCE(MAX(answer_seq), 0) + 1 FROM samples").fetchone()[0]
      db.execute("UPDATE samples SET status = ?, ratings = ?, leased_until = NULL, "
                 "answer_seq = ? WHERE id = ?",
                 (COMPLETE, json.dumps(list(ratings)), order, sample_id))
    return COUNTED

  def progress(self, rater):
    with self._connect() as db:
      answered = db.execute("SELECT COUNT(*) FROM samples WHERE status = ? AND rater = ?",
                            (COMPLETE, rater)).fetchone()[0]
      left = db.execute("SELECT COUNT(*) FROM samples WHERE status != ?",
                        (COMPLETE,)).fetchone()[0]
    return {"answered": answered, "left": left}

  def completed(self):
    with self._connect() as db:
      rows = db.execute("SELECT record, ratings FROM samples WHERE status = ? "
                        "ORDER BY answer_seq", (COMPLETE,)).fetchall()
    return [{**json.loads(record), "status": COMPLETE, "ratings": json.loads(ratings)}
            for record, ratings in rows]


def open_store(survey_dir: str) -> SurveyStore:
  """The survey's database; a file that is not one is a DatasetError naming it."""
  os.makedirs(survey_dir, exist_ok=True)
  path = os.path.join(survey_dir, DB_FILE)
  try:
    return SqliteStore(path)
  except sqlite3.Error as e:
    raise DatasetError([Problem(path, None, f"not a survey database ({e})")]) from e
