"""The survey (launch/survey.py) against the original's crowd_sourced_feedback: its shipped
answers and results, and a transcription of its scripts (original_survey_reference.py) on
answers it never saw; the database's rules; the API's refusals."""

import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import urllib.parse

import numpy as np
import pytest
from scipy import optimize

import original_survey_reference as ref
from conftest import ED_DIR, REPO, REWARD_DIR
from empathy_jax.errors import DatasetError
from empathy_jax.survey import commands, ratings as R, server, store as S, tables as T

ORIGINAL = os.path.join(REPO, "datasets", "original_survey")
LAUNCHER = os.path.join(REPO, "launch", "survey.py")


def survey(*args, ok=True):
  proc = subprocess.run([sys.executable, LAUNCHER, *args], capture_output=True, text=True,
                        timeout=300)
  if ok:
    assert proc.returncode == 0, proc.stderr
  return proc


def test_ratings_and_reward_dataset_reproduce_the_originals_files(tmp_path):
  folder = tmp_path / "survey"
  shutil.copytree(ORIGINAL, folder)
  for name in ("model_ratings.json", "response_ratings.json"):
    os.remove(folder / "results" / name)
  survey("ratings", f"--survey_dir={folder}")
  with open(os.path.join(ORIGINAL, "results", "model_ratings.json")) as f:
    expected = json.load(f)
  got = json.loads((folder / "results" / "model_ratings.json").read_text())
  assert set(got) == set(expected)
  assert max(abs(got[m][i] - expected[m][i]) for m in expected for i in range(3)) <= 1e-9
  with open(os.path.join(ORIGINAL, "results", "response_ratings.json")) as f:
    assert json.loads((folder / "results" / "response_ratings.json").read_text()) == json.load(f)
  assert (folder / "results" / commands.HEATMAP).stat().st_size > 10_000
  spread = json.loads((folder / "results" / "rating_intervals.json").read_text())
  gpt3 = "f8afce91-8f4f-4e7a-9351-337ef83ae4ef"
  assert spread["answers"] == 660 and spread["names"][gpt3] == "GPT3_v0"
  # What docs/survey.md says of these answers (seed 0, 1,000 draws).
  for criterion, per in spread["ratings"].items():
    others = [per[m] for m in per if m != gpt3]
    assert all(per[gpt3]["bradley_terry_low"] > o["bradley_terry_high"] for o in others)
    elo_apart = all(per[gpt3]["elo_low"] > o["elo_high"] for o in others)
    assert elo_apart == (criterion == "Empathy"), criterion
    assert max(o["elo_low"] for o in others) < min(o["elo_high"] for o in others)
    width = np.mean([(r["elo_high"] - r["elo_low"]) / (r["bradley_terry_high"]
                                                       - r["bradley_terry_low"])
                     for r in per.values()])
    assert 2.5 < width < 4, width
  # The reward dataset the project ships is what the original made of these answers.
  survey("reward_dataset", f"--survey_dir={folder}", f"--output_dir={tmp_path / 'out'}")
  for name in ("contexts.json", "responses.json", "ratings.json"):
    with open(os.path.join(REWARD_DIR, "train", name), "rb") as f:
      assert (tmp_path / "out" / "reward_dataset" / "train" / name).read_bytes() == f.read()
  # Never another run's dataset overwritten.
  again = survey("reward_dataset", f"--survey_dir={folder}", f"--output_dir={tmp_path / 'out'}",
                 ok=False)
  assert again.returncode == 1
  assert again.stderr.strip().splitlines()[-1].startswith("error: ")
  assert "--overwrite" in again.stderr


def _random_answers(seed: int, models: int = 5, contexts: int = 30, answers: int = 200):
  rng = random.Random(seed)
  ids = [f"model-{rng.getrandbits(32):08x}" for _ in range(models)]
  rows = []
  for _ in range(answers):
    a, b = rng.sample(ids, 2)
    cid = rng.randrange(contexts)
    rows.append(T.sample(f"{rng.getrandbits(64):016x}", cid, [f"context {cid}", "turn"],
                         ((a, f"{a[:4]} on {cid} \u00e9"), (b, f"{b[:4]} on {cid}")),
                         T.COMPLETE) | {"ratings": [rng.randint(-2, 2) for _ in range(3)]})
  return ids, rows


@pytest.mark.parametrize("seed,k", [(1, 32.0), (2, 16.0), (3, 7.5)])
def test_ratings_match_the_transcribed_scripts_on_new_answers(seed, k):
  ids, rows = _random_answers(seed)
  want_models, want_responses, want_corr = ref.process_survey_results(
      json.loads(json.dumps(rows)), ids, K=k)
  got = R.elo(rows, ids, k)
  assert list(got) == list(want_models)
  assert max(abs(got[m][i] - want_models[m][i]) for m in ids for i in range(3)) <= 1e-9
  assert json.dumps(R.response_ratings(rows)) == json.dumps(want_responses)
  np.testing.assert_allclose(R.correlation(rows), want_corr, atol=1e-12)
  files = ref.reward_dataset_files(json.loads(json.dumps(want_responses)))
  from empathy_jax.survey.reward_data import reward_dataset
  for name, value in zip(("contexts.json", "responses.json", "ratings.json"),
                         reward_dataset(json.loads(json.dumps(want_responses)))):
    assert json.dumps(value) == files[name]


def test_bradley_terry_is_the_likelihoods_maximum_and_ignores_order():
  ids, rows = _random_answers(4, models=4, answers=300)
  fitted, converged = R.bradley_terry(rows, ids, ridge=0.0)
  assert converged
  got = fitted[0]
  index = {m: i for i, m in enumerate(ids)}
  a = np.array([index[r["modelA"]] for r in rows])
  b = np.array([index[r["modelB"]] for r in rows])
  for c in range(3):
    s = np.array([(2 - r["ratings"][c]) / 4 for r in rows])

    def nll(theta):
      d = theta[a] - theta[b]
      return -np.sum(s * -np.logaddexp(0, -d) + (1 - s) * -np.logaddexp(0, d))

    best = optimize.minimize(nll, np.zeros(len(ids)), method="BFGS", options={"gtol": 1e-10}).x
    best = 1000 + R.ELO_SCALE * (best - best.mean())
    np.testing.assert_allclose(got[c], best, atol=1e-3)
  shuffled = list(rows)
  random.Random(0).shuffle(shuffled)
  np.testing.assert_allclose(R.bradley_terry(shuffled, ids)[0], R.bradley_terry(rows, ids)[0],
                             atol=1e-9)
  # Bootstrap weights of whole numbers: the same as repeating the answers.
  counts = np.random.default_rng(0).integers(0, 3, size=(2, len(rows)))
  for rep in range(2):
    repeated = [row for row, c in zip(rows, counts[rep]) for _ in range(c)]
    np.testing.assert_allclose(R.bradley_terry(rows, ids, counts)[0][rep],
                               R.bradley_terry(repeated, ids)[0][0], atol=1e-6)
  assert R.elo(shuffled, ids) != R.elo(rows, ids)  # Elo depends on the order; BT does not


def test_bootstrap_replays_elo_and_brackets_the_estimates():
  ids, rows = _random_answers(5, models=3, answers=150)
  same = R.elo_resampled(rows, ids, 32, np.arange(len(rows))[None])[0]
  want = R.elo(rows, ids)
  np.testing.assert_allclose(same, np.array([want[m] for m in ids]).T, atol=1e-9)
  spread, converged = R.intervals(rows, ids, num_resamples=300, seed=1)
  assert converged and (spread, converged) == R.intervals(rows, ids, num_resamples=300, seed=1)
  for per in spread.values():
    for r in per.values():
      assert r["bradley_terry_low"] < r["bradley_terry"] < r["bradley_terry_high"]
      assert r["elo_low"] < r["elo_high"] and r["elo_high"] - r["elo_low"] < 400


# -- the database -------------------------------------------------------------------------------


def _pushed(tmp_path, count=3):
  store = S.open_store(str(tmp_path))
  rows = [T.sample(f"s{i}", i, [f"c{i}"], (("m1", f"a{i}"), ("m2", f"b{i}"))) for i in range(count)]
  store.add_samples(rows)
  return store


def test_store_hands_out_leases_counts_each_answer_once_and_keeps_raters_apart(tmp_path):
  store = _pushed(tmp_path)
  alice, bob = store.add_rater("alice"), store.add_rater("bob")
  a, b = store.rater(alice), store.rater(bob)
  assert a != b and store.rater(alice + "x") is None and store.rater("99." + alice[2:]) is None
  assert store.rater("") is None and store.rater("no-dot") is None
  first = store.next_sample(a, now=0, lease_seconds=10)
  assert first["id"] == "s0"
  assert store.next_sample(a, now=1, lease_seconds=10)["id"] == "s0"  # a reload: the same one
  assert store.next_sample(b, now=1, lease_seconds=10)["id"] == "s1"
  assert store.rate(b, "s0", [0, 0, 0], now=2) == S.NOT_HANDED_TO_YOU
  assert store.rate(a, "nope", [0, 0, 0], now=2) == S.NO_SUCH_SAMPLE
  assert store.rate(a, "s2", [0, 0, 0], now=2) == S.NOT_HANDED_TO_YOU  # never handed out
  assert store.rate(a, "s0", [-2, 1, 0], now=2) == S.COUNTED
  assert store.rate(a, "s0", [2, 2, 2], now=3) == S.ALREADY_COUNTED  # the first answer stays
  assert store.rate(b, "s0", [2, 2, 2], now=3) == S.NOT_HANDED_TO_YOU
  # Bob's lease on s1 runs out: the next rater to ask gets it; bob's late answer is refused.
  assert store.next_sample(a, now=20, lease_seconds=10)["id"] == "s1"
  assert store.rate(b, "s1", [1, 1, 1], now=21) == S.NOT_HANDED_TO_YOU
  assert store.rate(a, "s1", [1, 0, -1], now=21) == S.COUNTED
  assert store.progress(a) == {"answered": 2, "left": 1}
  assert store.progress(b) == {"answered": 0, "left": 1}
  done = store.completed()
  assert [(r["id"], r["ratings"], r["status"]) for r in done] == [
      ("s0", [-2, 1, 0], T.COMPLETE), ("s1", [1, 0, -1], T.COMPLETE)]
  assert done[0]["sample"] == {"id": 0, "context": ["c0"], "responseA": "a0", "responseB": "b0"}
  assert store.next_sample(b, now=22, lease_seconds=10)["id"] == "s2"
  assert store.rate(b, "s2", [0, 0, 0], now=23) == S.COUNTED
  assert store.next_sample(a, now=24, lease_seconds=10) is None


def _test_data(folder, ids, prefix, context_of=None):
  with open(os.path.join(ED_DIR, "test", "contexts.json")) as f:
    contexts = json.load(f)
  rows = [{"id": i, "context": (context_of or contexts)[i], "target": "t",
           "output": f"{prefix} answer {i}"} for i in ids]
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "test_data.json"), "w") as f:
    json.dump(rows, f)
  return str(folder)


def test_models_and_samples_in_the_originals_format(tmp_path):
  folder = str(tmp_path / "survey")
  one = _test_data(tmp_path / "one", range(10), "one")
  two = _test_data(tmp_path / "two", range(6), "two")  # tested on fewer rows
  got = commands.add_model(folder, "SFT", one, ED_DIR, seed=0)
  assert got == {"model_id": got["model_id"], "version": 0, "responses": 10, "samples_added": 0}
  tables = T.load_tables(folder)
  gold = next(t for t in tables if t["model_name"] == "GOLD")
  assert gold["version"] is None and len(gold["responses"]) == 5242
  assert list(gold) == ["model_id", "model_name", "version", "responses"]
  assert commands.add_model(folder, "SFT", one, None)["version"] == 1
  with pytest.raises(ValueError, match="GOLD is reserved"):
    commands.add_model(folder, "GOLD", one, None)
  with pytest.raises(DatasetError, match="another split"):
    commands.add_model(folder, "X", _test_data(tmp_path / "bad", [0, 1], "x",
                                               context_of=[["a"], ["b"]]), None)
  with pytest.raises(DatasetError, match="differs from the contexts"):
    bad_dataset = tmp_path / "other" / "test"
    bad_dataset.mkdir(parents=True)
    (bad_dataset / "contexts.json").write_text(json.dumps([["x"]]))
    commands.add_model(folder, "X", one, str(tmp_path / "other"))
  commands.add_model(folder, "PPO", two, None)
  pushed = commands.push_samples(folder, 4, seed=3)
  assert pushed == {"contexts": 4, "samples": 4 * 6, "asked": 4}  # 4 tables: 6 pairs each
  rows = [json.loads(r[0]) for r in
          S.sqlite3.connect(os.path.join(folder, S.DB_FILE)).execute("SELECT record FROM samples")]
  assert all(r["sample"]["id"] < 6 for r in rows)  # only contexts every model answered
  for r in rows:
    assert list(r) == ["id", "modelA", "modelB", "sample"]
    assert list(r["sample"]) == ["id", "context", "responseA", "responseB"]
  # A model added after a push is paired with every model on the pushed contexts.
  late = commands.add_model(folder, "LATE", one, None, seed=1)
  assert late["samples_added"] == 4 * 4
  # One seed given twice: the same draw, never the same ids.
  again = commands.push_samples(folder, 1, seed=3)
  assert again["samples"] == 10  # 5 tables now: 10 pairs
  with pytest.raises(ValueError, match="every context"):
    commands.push_samples(folder, 10)
    commands.push_samples(folder, 10)
  ids = [t["model_id"] for t in T.load_tables(folder)]
  assert len(ids) == len(set(ids)) == 5


# -- the API ------------------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path):
  store = _pushed(tmp_path, count=2)
  store.add_samples([T.sample("html", 9, ["<b>hi</b>"], (("m1", "<script>alert(1)</script>"),
                                                         ("m2", "a & b")))])
  httpd = server.make_server(store, "127.0.0.1", 0, lease_seconds=60)
  thread = threading.Thread(target=httpd.serve_forever, daemon=True)
  thread.start()

  def call(method, path, body=None, raw=None, headers=None):
    conn = http.client.HTTPConnection(*httpd.server_address, timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=headers or {})
    response = conn.getresponse()
    payload = response.read()
    return response.status, (json.loads(payload) if payload.startswith(b"{") else payload), \
        dict(response.getheaders())

  call.address = httpd.server_address
  yield store, call
  httpd.shutdown()
  httpd.server_close()


def test_api_answers_and_refuses_as_documented(api):
  store, call = api
  token = store.add_rater("alice")
  assert call("GET", "/api/next?rater=wrong")[0] == 403
  code, got, headers = call("GET", f"/api/next?rater={token}")
  assert code == 200 and set(got) == {"sample_id", "context", "responseA", "responseB"}
  assert headers["Cache-Control"] == "no-store" and "default-src 'self'" in \
      headers["Content-Security-Policy"]
  rate = {"rater": token, "sample_id": got["sample_id"], "ratings": [-2, 0, 2]}
  for bad in ([1, 2], [1, 2, 3], [True, 0, 0], [0.5, 0, 0], "x", None):
    assert call("POST", "/api/rate", {**rate, "ratings": bad})[0] == 400
  assert call("POST", "/api/rate", {**rate, "rater": "1.x"})[0] == 403
  assert call("POST", "/api/rate", {**rate, "sample_id": "nope"})[0] == 404
  assert call("POST", "/api/rate", raw=b"{not json")[0] == 400
  assert call("POST", "/api/rate", raw=b"[1]")[0] == 400
  big = json.dumps({**rate, "pad": "x" * server.MAX_BODY_BYTES}).encode()
  assert call("POST", "/api/rate", raw=big)[0] == 413
  assert call("POST", "/api/rate", rate)[:2] == (200, {"result": S.COUNTED})
  repeat = {**rate, "ratings": [1, 1, 1]}  # a retry: 200 again, counted once, the first stays
  assert call("POST", "/api/rate", repeat)[:2] == (200, {"result": S.ALREADY_COUNTED})
  assert [r["ratings"] for r in store.completed()] == [[-2, 0, 2]]
  bob = store.add_rater("bob")
  other = call("GET", f"/api/next?rater={bob}")[1]
  assert call("POST", "/api/rate", {**rate, "sample_id": other["sample_id"]})[0] == 409
  assert call("GET", f"/api/progress?rater={token}")[1] == {"answered": 1, "left": 2}
  assert call("DELETE", "/api/rate")[0] == 405
  assert call("GET", "/secret")[0] == 404
  page = call("GET", "/")[1]
  assert b"<script src=\"/survey.js\">" in page and b"http" not in page.lower().replace(
      b"http-equiv", b"")  # no external asset
  for _ in range(3):
    got = call("GET", f"/api/next?rater={token}")
    if got[0] == 204:
      break
    assert call("POST", "/api/rate", {"rater": token, "sample_id": got[1]["sample_id"],
                                      "ratings": [0, 0, 0]})[0] in (200, 409)
  assert call("GET", f"/api/next?rater={token}")[0] == 204


def test_api_survives_crafted_requests(api):
  store, call = api
  token = store.add_rater("alice")
  for rater in ("\u00b2.x", "99999999999999999999.x", "1.", ".x", "0x1.x"):
    assert call("GET", "/api/next?rater=" + urllib.parse.quote(rater))[0] == 403
    assert call("POST", "/api/rate", {"rater": rater, "sample_id": "s0",
                                      "ratings": [0, 0, 0]})[0] == 403
  assert call("POST", "/api/rate", raw=b"[" * 3000)[0] == 400
  assert call("POST", "/api/rate", {"rater": ["x"], "sample_id": "s0",
                                    "ratings": [0, 0, 0]})[0] == 403
  # A body left unread (an unknown path) closes the connection: what it holds is never taken
  # for a second request.
  smuggled = (b"GET /api/next?rater=" + token.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
  conn = http.client.HTTPConnection(*call.address, timeout=10)
  conn.request("POST", "/elsewhere", body=smuggled)
  response = conn.getresponse()
  assert response.status == 404 and response.getheader("Connection") == "close"
  response.read()
  assert store.progress(store.rater(token)) == {"answered": 0, "left": 3}
  with S.sqlite3.connect(store.path) as db:  # nothing was handed out by the smuggled request
    assert db.execute("SELECT COUNT(*) FROM samples WHERE status = 1").fetchone()[0] == 0
  # A silent client holds one thread, not the server.
  silent = socket.create_connection(call.address)
  try:
    assert call("GET", f"/api/progress?rater={token}")[0] == 200
  finally:
    silent.close()


def test_launcher_refuses_bad_input_with_one_error_line(tmp_path):
  for args, needle in ((["nothing"], "subcommand"),
                       (["push_samples", f"--survey_dir={tmp_path}"], "--num_per_model"),
                       (["push_samples", f"--survey_dir={tmp_path}", "--num_per_model=2"],
                        "add models first"),
                       (["add_model", f"--survey_dir={tmp_path}", "--model_name=GOLD",
                         f"--model_dir={tmp_path}"], "reserved"),
                       (["ratings", f"--survey_dir={ORIGINAL}", "--K=0"], "--K"),
                       (["serve", f"--survey_dir={tmp_path}"], "no survey yet"),
                       (["ratings", "--no_such_flag"], "no_such_flag"),
                       (["ratings", "--port=abc"], "--port")):
    proc = survey(*args, ok=False)
    assert proc.returncode == 1, args
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and needle in last, (args, proc.stderr)
    assert "Traceback" not in proc.stderr
  broken = tmp_path / "broken"
  shutil.copytree(ORIGINAL, broken)
  rows = json.loads((broken / "results" / "survey_results.json").read_text())
  rows[5]["ratings"] = [3, 0, 0]
  (broken / "results" / "survey_results.json").write_text(json.dumps(rows))
  proc = survey("ratings", f"--survey_dir={broken}", ok=False)
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: {broken}/results/survey_results.json[5]: ratings must be three integers from "
      f"-2 to 2")
  rows[5]["ratings"] = [0, 0, 0]
  rows[7]["modelA"] = ["not", "an", "id"]
  (broken / "results" / "survey_results.json").write_text(json.dumps(rows))
  proc = survey("ratings", f"--survey_dir={broken}", ok=False)
  assert proc.stderr.strip().splitlines()[-1].endswith(
      "survey_results.json[7]: modelA or modelB is not a model table of this survey")
  rr = json.loads((broken / "results" / "response_ratings.json").read_text())
  del rr[next(iter(rr))]["context"]
  (broken / "results" / "response_ratings.json").write_text(json.dumps(rr))
  proc = survey("reward_dataset", f"--survey_dir={broken}", f"--output_dir={tmp_path / 'o'}",
                ok=False)
  assert "not a response-ratings entry" in proc.stderr.strip().splitlines()[-1]
  assert not (tmp_path / "o").exists()
  (broken / "survey.sqlite").write_bytes(b"this is not a database" * 100)
  for args in (["serve", "--port=70000"], ["serve", "--lease_seconds=inf"], ["serve"],
               ["results"]):
    proc = survey(*args, f"--survey_dir={broken}", ok=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1 and last.startswith("error: ") and "Traceback" not in \
        proc.stderr, (args, proc.stderr)
    assert ("--port" in last) if "--port=70000" in args else True
    assert ("--lease_seconds" in last) if "--lease_seconds=inf" in args else True
    assert ("survey.sqlite" in last) if args in (["serve"], ["results"]) else True
