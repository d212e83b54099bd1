"""The survey's server as raters meet it: a real process killed with SIGKILL under eight
concurrent raters, a real browser driven by the keyboard, and the README's whole loop from
two tested models to a reward model trained on the answers."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import browser
from conftest import ED_DIR, REPO
from empathy_jax.survey import store as S, tables as T
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

LAUNCHER = os.path.join(REPO, "launch", "survey.py")


class Server:
  """`survey.py serve` in its own process, on a free port it announces."""

  def __init__(self, survey_dir: str, lease_seconds: float = 900):
    self.proc = subprocess.Popen(
        [sys.executable, LAUNCHER, "serve", f"--survey_dir={survey_dir}", "--port=0",
         f"--lease_seconds={lease_seconds}"], stdout=subprocess.PIPE, text=True)
    line = self.proc.stdout.readline()
    self.port = int(re.search(r":(\d+)/", line).group(1))

  def kill(self):
    self.proc.send_signal(signal.SIGKILL)
    self.proc.wait()

  def stop(self):
    self.proc.terminate()
    assert self.proc.wait(timeout=30) == 0


def request(port, method, path, body=None):
  conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
  try:
    conn.request(method, path, body=None if body is None else json.dumps(body),
                 headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    return response.status, json.loads(payload) if payload else None
  finally:
    conn.close()


def _answer(sample_id: str) -> list[int]:
  """The answer a scripted rater gives a sample (fixed, so a retry sends the same one)."""
  h = sum(map(ord, sample_id))
  return [h % 5 - 2, (h // 5) % 5 - 2, (h // 25) % 5 - 2]


def _pushed_survey(folder: str, count: int) -> S.SurveyStore:
  store = S.open_store(folder)
  store.add_samples([T.sample(f"s{i:03d}", i, [f"context {i}"], (("m1", f"a{i}"), ("m2", f"b{i}")))
                     for i in range(count)])
  return store


def test_sigkill_under_eight_raters_loses_no_acknowledged_answer(tmp_path):
  folder = str(tmp_path)
  store = _pushed_survey(folder, 240)
  tokens = [store.add_rater(f"rater{i}") for i in range(8)]
  server = {"now": Server(folder)}
  acknowledged, counted, failures, lock = {}, [], [], threading.Lock()

  def rater(token):
    try:
      answer_all(token)
    except BaseException as e:  # a failed check in a thread must fail the test
      failures.append(repr(e))

  def answer_all(token):
    pending = None
    while True:
      port = server["now"].port
      try:
        if pending is None:
          code, got = request(port, "GET", f"/api/next?rater={token}")
          if code == 204:
            return
          assert code == 200, (code, got)
          pending = got["sample_id"]
        code, got = request(port, "POST", "/api/rate",
                            {"rater": token, "sample_id": pending, "ratings": _answer(pending)})
        assert code == 200, (code, got)
        with lock:
          acknowledged[pending] = _answer(pending)
          if got["result"] == S.COUNTED:
            counted.append(pending)
        pending = None
      except (OSError, http.client.HTTPException):
        time.sleep(0.02)  # the server is down: ask again (the same answer, if one was pending)

  threads = [threading.Thread(target=rater, args=(t,)) for t in tokens]
  for t in threads:
    t.start()
  for at in (40, 120):  # two kills, wherever the raters happen to be
    while len(acknowledged) < at:
      time.sleep(0.01)
    server["now"].kill()
    server["now"] = Server(folder)
  for t in threads:
    t.join(timeout=240)
    assert not t.is_alive()
  server["now"].stop()
  assert not failures
  done = S.open_store(folder).completed()
  ids = [r["id"] for r in done]
  assert len(ids) == len(set(ids)) == 240  # every sample answered once
  assert len(counted) == len(set(counted))  # "counted" said once per sample
  assert set(acknowledged) == set(ids)
  for row in done:
    assert row["ratings"] == acknowledged[row["id"]] == _answer(row["id"])


def test_a_rater_answers_with_the_keyboard_reloads_and_sees_text_as_text(tmp_path):
  folder = str(tmp_path)
  # The HTML-bearing sample comes first in the pool.
  html = T.sample("s000", 0, ["<b>bold?</b>", "I'm fine & you?"],
                  (("m1", "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"),
                   ("m2", "plain")))
  store = S.open_store(folder)
  store.add_samples([html] + [T.sample(f"s{i:03d}", i, [f"context {i}"],
                                       (("m1", f"a{i}"), ("m2", f"b{i}"))) for i in range(1, 7)])
  token = store.add_rater("alice")
  server = Server(folder)
  try:
    with browser.chromium(loopback=True) as chrome:
      chrome.set_window_size(390, 844)  # a phone
      chrome.get(f"http://127.0.0.1:{server.port}/#rater={token}")
      wait = WebDriverWait(chrome, 20)

      def shown_sample():
        wait.until(lambda d: d.find_element(By.ID, "responseA").text)
        return chrome.find_element(By.ID, "responseA").text, chrome.find_element(
            By.ID, "responseB").text

      a, b = shown_sample()
      assert "<script>document.title='pwned'</script><img src=x onerror=alert(1)>" in (a, b)
      context = chrome.find_element(By.ID, "context").text
      assert "<b>bold?</b>" in context and "I'm fine & you?" in context
      assert chrome.title == "Rate responses"
      assert not chrome.find_elements(By.CSS_SELECTOR, "#context b, .response img, .response script")
      assert chrome.execute_script(
          "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")

      def answer_one(keys=("1", "3", "5")):
        before = shown_sample()
        progress = chrome.find_element(By.ID, "progress").text
        for key in keys:
          ActionChains(chrome).send_keys(key).perform()
        ActionChains(chrome).send_keys("\ue007").perform()  # Enter
        wait.until(lambda d: d.find_element(By.ID, "progress").text != progress)
        return before

      seen = [answer_one() for _ in range(2)]
      # Half an answer, then a reload: the same sample comes back with the choice kept.
      current = shown_sample()
      ActionChains(chrome).send_keys("2").perform()
      chrome.refresh()
      assert shown_sample() == current
      wait.until(lambda d: "You have rated 2" in d.find_element(By.ID, "progress").text)
      chosen = chrome.find_elements(By.CSS_SELECTOR, "fieldset[data-index='0'] button.chosen")
      assert [c.text for c in chosen] == ["2 · A better"]
      seen.append(answer_one(("3", "5")))  # the rest of it: the next criteria are active
      seen += [answer_one() for _ in range(2)]
      wait.until(lambda d: "You have rated 5" in d.find_element(By.ID, "progress").text)
      assert len(set(seen)) == 5
  finally:
    server.stop()
  # Keys 1, 3, 5: A much better on empathy, equal on relevance, B much better on fluency.
  done = S.open_store(folder).completed()
  assert [(r["id"], r["ratings"]) for r in done] == [
      ("s000", [-2, 0, 2]), ("s001", [-2, 0, 2]), ("s002", [-1, 0, 2]), ("s003", [-2, 0, 2]),
      ("s004", [-2, 0, 2])]


def run(*args):
  proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600,
                        cwd=REPO)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  return proc.stdout


def test_the_readme_loop_from_two_tested_models_to_a_reward_model(tmp_path):
  out, folder = tmp_path / "outputs", str(tmp_path / "survey")
  for model in ("GODEL_SMALL_ED", "GODEL_TINY"):
    run("launch/test.py", f"--dataset_dir={ED_DIR}", f"--model={model}",
        f"--output_dir={out / model}", "--max_examples=12", "--max_new_tokens=12")
  run(LAUNCHER, "add_model", f"--survey_dir={folder}", "--model_name=SMALL_ED",
      f"--model_dir={out / 'GODEL_SMALL_ED'}", f"--dataset_dir={ED_DIR}")
  run(LAUNCHER, "add_model", f"--survey_dir={folder}", "--model_name=TINY",
      f"--model_dir={out / 'GODEL_TINY'}")
  assert "pushed 36 samples on 12 contexts" in run(LAUNCHER, "push_samples",
                                                   f"--survey_dir={folder}",
                                                   "--num_per_model=20", "--seed=0")
  tokens = [run(LAUNCHER, "add_rater", f"--survey_dir={folder}", f"--name=r{i}"
                ).strip().splitlines()[-1] for i in range(2)]
  gold = next(t["model_id"] for t in T.load_tables(folder) if t["model_name"] == T.GOLD)
  server = Server(folder)
  try:
    for turn in range(36):  # scripted raters, in turns: the human targets win every time
      token = tokens[turn % 2]
      code, got = request(server.port, "GET", f"/api/next?rater={token}")
      record = json.loads(S.sqlite3.connect(os.path.join(folder, S.DB_FILE)).execute(
          "SELECT record FROM samples WHERE id = ?", (got["sample_id"],)).fetchone()[0])
      side = -2 if record["modelA"] == gold else 2 if record["modelB"] == gold else 0
      assert request(server.port, "POST", "/api/rate", {
          "rater": token, "sample_id": got["sample_id"], "ratings": [side, side, 0]})[0] == 200
    assert request(server.port, "GET", f"/api/next?rater={tokens[0]}")[0] == 204
  finally:
    server.stop()
  assert "36 answers" in run(LAUNCHER, "results", f"--survey_dir={folder}")
  printed = run(LAUNCHER, "ratings", f"--survey_dir={folder}", "--num_resamples=200")
  assert printed.splitlines()[1].lstrip().startswith("GOLD_vNone")  # best on empathy
  spread = json.loads(open(os.path.join(folder, "results", "rating_intervals.json")).read())
  others = [m for m in spread["names"] if m != gold]
  for criterion in ("Empathy", "Relevance"):
    per = spread["ratings"][criterion]
    assert all(per[gold]["bradley_terry_low"] > per[m]["bradley_terry_high"] for m in others)
  run(LAUNCHER, "reward_dataset", f"--survey_dir={folder}", f"--output_dir={tmp_path / 'data'}")
  ratings = json.loads((tmp_path / "data" / "reward_dataset" / "train" / "ratings.json"
                        ).read_text())
  assert len(ratings) == 12 and sum(map(len, ratings)) == 36
  run("launch/train_reward_model.py", f"--dataset_dir={tmp_path / 'data' / 'reward_dataset'}",
      "--model=GODEL_TINY", f"--output_dir={tmp_path / 'reward'}", "--batch_size=4",
      "--max_epochs=1", "--val_fraction=0.25")
  assert os.path.isdir(tmp_path / "reward" / "tensorboard_logs" / "version_0" / "best")
