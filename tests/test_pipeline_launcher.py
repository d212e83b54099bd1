"""`launch/pipeline.py` end to end on a reduced size (2-layer DialoGPT-format models, a few
contexts per stage): SFT -> reward model -> PPO, DPO and RLOO -> test of every policy -> report,
as one command on one device; the rerun skips every finished stage; the report's tables and the data
behind its plots are the runs' own numbers."""

import json
import os
import subprocess
import sys

import matplotlib.image
import numpy as np

import browser
import hf_fixtures as hf
from conftest import REPO, REWARD_DIR
from empathy_jax.pipeline_report import fmt
from empathy_jax.training.metrics_log import read_scalars

LAUNCHER = os.path.join(REPO, "launch", "pipeline.py")
# A sitecustomize that makes torch and TensorFlow look uninstalled: every import finder answers
# "not found" for them, so `import torch` fails as it does without the package and libraries
# that probe for it (find_spec) see nothing.
HIDE_PACKAGES = """
import sys
HIDDEN = {"torch", "tensorflow", "tensorflow_text"}


class Hide:
  def __init__(self, finder):
    self.finder = finder

  def find_spec(self, name, path=None, target=None):
    if name.split(".")[0] in HIDDEN:
      return None
    return self.finder.find_spec(name, path, target)

  def __getattr__(self, attr):
    return getattr(self.finder, attr)


sys.meta_path[:] = [Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
"""
CONFIG = '''
import ml_collections

def get_config():
  return ml_collections.ConfigDict({{
      "sft": dict(dataset_dir={data!r}, pretrained_model_dir={start!r}, max_epochs=1,
                  batch_size=8, max_train_examples=16, max_val_examples=8, initial_lr=4e-3,
                  log_interval=1,
                  num_val_samples=1, sample_max_new_tokens=4),
      "reward": dict(dataset_dir={rewards!r}, pretrained_model_dir={start!r}, max_epochs=1,
                     batch_size=4, max_contexts=12, val_fraction=0.25, initial_lr=1e-4),
      "ppo": dict(dataset_dir={data!r}, max_epochs=1, batch_size=8, max_train_examples=8,
                  max_val_examples=8, max_new_tokens=4, kl_penalty=0.05, initial_lr=1e-4),
      "dpo": dict(dataset_dir={rewards!r}, max_epochs=1, batch_size=8, max_contexts=12,
                  val_fraction=0.25, initial_lr=1e-4),
      "grpo": dict(dataset_dir={data!r}, max_epochs=1, batch_size=8, group_size=2,
                   max_train_examples=8, max_val_examples=8, max_new_tokens=4,
                   initial_lr=1e-4),
      "test": dict(dataset_dir={data!r}, max_examples=8, max_new_tokens=4, batch_size=8),
      "classifiers": {{"intent": dict(dataset_dir={intents!r}, max_train_examples=32,
                                      hidden_size=32, num_layers=1, max_length=16,
                                      batch_size=16, max_epochs=1)}},
      "num_samples": 2}})
'''


def _check_headline(report, out):
  """The headline's numbers against the two test_data.json files they come from: the mean of
  the per-row reward changes (computed here) and each policy's most common output."""
  rows = {name: {r["id"]: r for r in json.load(open(out / "test" / name / "test_data.json"))}
          for name in ("sft", "ppo")}
  ids = sorted(rows["sft"])
  change = np.mean([rows["ppo"][i]["reward_output"] - rows["sft"][i]["reward_output"]
                    for i in ids])
  head = json.load(open(out / "report" / "headline.json"))
  assert head["rows"] == len(ids) == 8 and abs(head["mean_change"] - change) < 1e-12
  assert head["low"] <= change <= head["high"]
  verdict = ("an increase" if head["low"] > 0 else "a decrease" if head["high"] < 0 else
             "not distinguishable from no change")
  assert report.splitlines()[2].startswith(
      f"**PPO changed mean held-out reward by {change:+.4f} [95% CI {head['low']:+.4f}, "
      f"{head['high']:+.4f}] on 8 test rows (paired bootstrap, 10,000 resamples): {verdict}")
  for name, label in (("sft", "SFT"), ("ppo", "SFT+PPO")):
    outputs = [r["output"].strip() for r in rows[name].values()]
    top = max(set(outputs), key=outputs.count)
    share = outputs.count(top) / len(outputs)
    assert head["outputs"][label]["top_share"] == share
    assert (f"{label}: degenerate outputs" in report) == (share > 0.10)


def _check_comparison(report, out):
  """Each algorithm's headline against its own test rows, and the comparison table's KL the
  value its kl.json holds."""
  head = json.load(open(out / "report" / "headline.json"))
  sft = {r["id"]: r for r in json.load(open(out / "test" / "sft" / "test_data.json"))}
  for name in ("dpo", "rloo"):
    rows = {r["id"]: r for r in json.load(open(out / "test" / name / "test_data.json"))}
    change = np.mean([rows[i]["reward_output"] - sft[i]["reward_output"] for i in sorted(sft)])
    label = f"SFT+{name.upper()}"
    assert abs(head["algorithms"][label]["mean_change"] - change) < 1e-12
    assert f"**{name.upper()} changed mean held-out reward by {change:+.4f}" in report
    kl = json.load(open(out / "test" / name / "kl.json"))["result"]
    assert kl["rows"] == 8 and np.isfinite(kl["kl"])
    assert f"| {label} | {change:+.4f} [" in report and f"| {kl['kl']:.3f} ± " in report


def _check_html(folder):
  """report.html is one file: every image is embedded (the PNG's own bytes), nothing else is
  referenced, and its tables hold the Markdown's numbers."""
  import base64
  import html.parser

  page = (folder / "report.html").read_text()
  sources, links = [], []

  class Parser(html.parser.HTMLParser):
    def handle_starttag(self, tag, attrs):
      attrs = dict(attrs)
      if tag == "img":
        sources.append(attrs["src"])
      links.extend(v for k, v in attrs.items() if k in ("href", "src") and tag != "img")

  Parser().feed(page)
  assert len(sources) == 2 and not links
  pngs = {(folder / n).read_bytes() for n in ("curves.png", "metrics.png")}
  assert {base64.b64decode(s.split(",", 1)[1]) for s in sources} == pngs
  assert all(s.startswith("data:image/png;base64,") for s in sources)
  assert "PPO changed mean held-out reward by" in page
  # Opened in a real browser with no network: both plots decode at their PNGs' sizes, nothing
  # is fetched, and the page shows the Markdown report's headline and as many tables.
  shapes = [matplotlib.image.imread(folder / n).shape[:2] for n in ("curves.png", "metrics.png")]
  markdown = (folder / "report.md").read_text()
  with browser.chromium() as chrome:
    chrome.get((folder / "report.html").as_uri())
    images = chrome.execute_script("return Array.from(document.images).map("
                                   "i => [i.complete, i.naturalHeight, i.naturalWidth])")
    assert sorted(images) == sorted([True, h, w] for h, w in shapes)
    assert chrome.execute_script("return performance.getEntriesByType('resource').length") == 0
    text = chrome.find_element("tag name", "body").text
    assert markdown.splitlines()[2].strip("*") in text
    tables = chrome.execute_script("return document.querySelectorAll('table').length")
    assert tables == sum(1 for line in markdown.splitlines() if line.startswith("|---"))


def test_the_whole_loop_in_one_command(tmp_path, short_dialogues):
  start = str(tmp_path / "start")
  hf.save_torch_model("dialogpt", start)
  config = tmp_path / "pipeline_config.py"
  config.write_text(CONFIG.format(data=short_dialogues, start=start, rewards=REWARD_DIR,
                                  intents=os.path.join(REPO, "datasets", "empathetic_intents")))
  out = tmp_path / "pipeline"
  cmd = [sys.executable, LAUNCHER, "--config", str(config), "--output_dir", str(out),
         "--algorithm", "ppo,dpo,rloo"]
  # The main job needs neither torch nor TensorFlow (they belong to the test and tf extras):
  # the run sees them as not installed.
  blocker = tmp_path / "no_torch"
  blocker.mkdir()
  (blocker / "sitecustomize.py").write_text(HIDE_PACKAGES)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1",
             PYTHONPATH=os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]))
  done = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
  assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
  stages = ("sft", "reward", "ppo", "dpo", "rloo")
  for stage in stages:
    assert f"[{stage}] training" in done.stdout
  assert "[classifier intent] training" in done.stdout

  run = lambda stage: out / stage / "tensorboard_logs" / "version_0"
  for stage in stages:
    assert (run(stage) / "FINISHED").exists()
  for stage in ("dpo", "rloo"):  # every algorithm starts from the SFT run's best policy
    assert json.load(open(run(stage) / "run_config.json"))["pretrained_model_dir"] == str(
        run("sft"))
  # PPO started from the SFT run's best policy and scored with the reward run's model.
  ppo_config = json.load(open(run("ppo") / "run_config.json"))
  assert ppo_config["pretrained_model_dir"] == str(run("sft"))
  assert ppo_config["reward_model_dir"] == str(run("reward"))
  metrics = {name: json.load(open(out / "test" / name / "test_metrics.json"))
             for name in ("sft", "ppo", "dpo", "rloo")}
  for m in metrics.values():
    assert {"bleu", "dist-2", "ppl", "mean_reward_output", "mean_reward_target",
            "empintent_accuracy"} <= set(m)

  report = (out / "report" / "report.md").read_text()
  assert "computed with classifiers trained here (intent;" in report
  held_out = json.load(open(out / "classifiers" / "intent" / "tensorboard_logs" / "version_0"
                            / "test_metrics.json"))
  assert f"held-out accuracy {held_out['accuracy']:.3f}" in report
  assert f"| SFT | {fmt('bleu', metrics['sft']['bleu'])} | {fmt('dist-2', metrics['sft']['dist-2'])} |" in report
  assert f"| SFT+PPO | {fmt('bleu', metrics['ppo']['bleu'])} |" in report
  _check_headline(report, out)
  _check_comparison(report, out)
  _check_html(out / "report")
  assert "GODEL_EMPDIAL_RLHF (published)" in report and report.count("**Example ") == 2
  plotted = json.load(open(out / "report" / "metrics.json"))
  assert plotted["ppl"]["ours"] == {"SFT": metrics["sft"]["ppl"], **{
      f"SFT+{n.upper()}": metrics[n]["ppl"] for n in ("ppo", "dpo", "rloo")}}
  curves = json.load(open(out / "report" / "curves.json"))
  assert [list(p) for p in read_scalars(str(run("ppo")))["val_reward"]] == \
      curves["ppo"]["val_reward"]
  assert len(curves["sft"]["val_loss"]) == 1 and len(curves["sft"]["train_loss"]) >= 1
  for png in ("curves.png", "metrics.png"):
    image = matplotlib.image.imread(out / "report" / png)
    assert image.shape[0] > 200 and np.unique(image).size > 10

  # The same command again: every stage finished, nothing is trained or tested twice.
  again = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
  assert again.returncode == 0, again.stderr[-3000:]
  assert "training" not in again.stdout and again.stdout.count("finished before") == 6
  assert again.stdout.count("tested before") == 4 and "[kl" not in again.stdout
  assert not (out / "sft" / "tensorboard_logs" / "version_1").exists()
