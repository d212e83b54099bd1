"""`launch/evaluate.py`: the original's human evaluation. A person sees a random test context
and the responses of several models (shuffled, anonymous) and rates each for Empathy and
Specificity, 0-5. Every answer is saved at once (`human_eval.json`, atomically), so a kill loses
at most the answer being typed and `--reuse_cache` continues where it stopped. At the end:
`model_scores.json` (mean and variance per model and criterion) and a Pearson correlation
heatmap of the human ratings and the automatic per-example scores (diff_ER, diff_EX, diff_IP,
reward) over the rated (example, model) pairs."""

from __future__ import annotations

import json
import os
import random
from typing import Callable

import numpy as np

from empathy_jax.errors import DatasetError, Problem
from empathy_jax.evaluation.suite import read_test_data
from empathy_jax.json_files import write_atomic

CRITERIA = ("empathy", "specificity")
CACHE_FILE = "human_eval.json"
SCORES_FILE = "model_scores.json"
HEATMAP_FILE = "human_eval_correlation.png"
VARIABLES = ("diff_ER", "diff_EX", "diff_IP", "reward", "empathy", "specificity")


class Quit(Exception):
  """The rater typed q: everything answered so far is saved."""


def load_models(dirs: list[str], names: list[str] | None) -> dict[str, dict]:
  """{model name: {id: test_data row}} from folders holding test_data.json (or the files)."""
  if len(dirs) < 2:
    raise ValueError("--model_dirs needs at least two models to compare")
  if names and len(names) != len(dirs):
    raise ValueError(f"--model_names has {len(names)} names for {len(dirs)} --model_dirs")
  models = {}
  for i, d in enumerate(dirs):
    path = d if d.endswith(".json") else os.path.join(d, "test_data.json")
    name = names[i] if names else os.path.basename(os.path.normpath(
        os.path.dirname(path) if d.endswith(".json") else d))
    if name in models:
      raise ValueError(f"two models are named {name!r}: give --model_names")
    models[name] = {r["id"]: r for r in read_test_data(path)}
  return models


def draw(models: dict[str, dict], num_samples: int, seed: int) -> list[dict]:
  """The samples to rate, the same for a seed on every run: test ids present in every model's
  file, and the order the models' responses are shown in."""
  common = sorted(set.intersection(*(set(m) for m in models.values())), key=str)
  if not common:
    raise DatasetError([Problem("--model_dirs", None, "the models share no test example id")])
  rng = random.Random(seed)
  ids = rng.sample(common, min(num_samples, len(common)))
  names = list(models)
  return [{"id": i, "order": rng.sample(names, len(names)), "ratings": {}} for i in ids]


def open_session(out_dir: str, models: dict, num_samples: int, seed: int, reuse: bool) -> dict:
  path = os.path.join(out_dir, CACHE_FILE)
  if os.path.exists(path):
    if not reuse:
      raise ValueError(f"{path} exists: pass --reuse_cache to continue it (or choose another "
                       f"--output_dir)")
    with open(path, encoding="utf-8") as f:
      session = json.load(f)
    if session.get("models") != list(models):
      raise ValueError(f"{path} rates models {session.get('models')}, not {list(models)}")
    return session
  os.makedirs(out_dir, exist_ok=True)
  session = {"models": list(models), "seed": seed, "samples": draw(models, num_samples, seed)}
  write_atomic(path, session)
  return session


def ask_rating(prompt: str, read: Callable[[str], str], write: Callable[[str], None]) -> int:
  """A whole number 0-5; anything else asks again; q quits."""
  while True:
    answer = read(prompt).strip().lower()
    if answer in ("q", "quit", "<quit>"):
      raise Quit()
    if answer.isdigit() and 0 <= int(answer) <= 5:
      return int(answer)
    write(f"  please type a whole number from 0 to 5 (q saves and quits), not {answer!r}\n")


def _rated(sample: dict) -> bool:
  """Whether every response of a sample has every criterion's rating."""
  return all(len(sample["ratings"].get(n, {})) == len(CRITERIA) for n in sample["order"])


def rate(session: dict, models: dict, out_dir: str, read=input, write=print) -> bool:
  """Asks for every missing rating, saving after each; returns True when all are done."""
  path = os.path.join(out_dir, CACHE_FILE)
  samples = session["samples"]
  done = sum(map(_rated, samples))
  write(f"{len(samples)} samples x {len(session['models'])} responses; {done} rated already. "
        f"Ratings 0-5; q saves and quits.\n")
  try:
    for k, sample in enumerate(samples):
      if _rated(sample):
        continue
      rows = {name: models[name][sample["id"]] for name in sample["order"]}
      first = next(iter(rows.values()))
      write(f"\n=== sample {k + 1}/{len(samples)}\n")
      for turn in first["context"]:
        write(f"  context: {turn}\n")
      for j, name in enumerate(sample["order"]):
        write(f"\n  Response {j + 1}: {rows[name]['output']}\n")
        got = sample["ratings"].setdefault(name, {})
        for criterion in CRITERIA:
          if criterion in got:
            continue
          got[criterion] = ask_rating(f"  {criterion.capitalize()} of response {j + 1} (0-5): ",
                                      read, write)
          write_atomic(path, session)
  except (Quit, EOFError):
    write("\nsaved; rerun with --reuse_cache to continue\n")
    return False
  return True


def _per_example(row: dict) -> dict[str, float]:
  values = {}
  for mech in ("ER", "EX", "IP"):
    out, tgt = row.get(f"epitome_{mech}_output"), row.get(f"epitome_{mech}_target")
    if out is not None and tgt is not None:
      values[f"diff_{mech}"] = (float(out) - float(tgt)) ** 2
  if row.get("reward_output") is not None:
    values["reward"] = float(row["reward_output"])
  return values


def summarize(session: dict, models: dict, out_dir: str) -> dict:
  """model_scores.json and the correlation heatmap (+ its numbers in a .json)."""
  scores = {name: {c: [] for c in CRITERIA} for name in session["models"]}
  table = []  # one row per rated (example, model)
  for sample in session["samples"]:
    for name, got in sample["ratings"].items():
      for c in CRITERIA:
        scores[name][c].append(got[c])
      table.append({**_per_example(models[name][sample["id"]]), **got})
  result = {name: {c: {"mean": float(np.mean(v)), "var": float(np.var(v)), "n": len(v)}
                   for c, v in per.items()} for name, per in scores.items()}
  write_atomic(os.path.join(out_dir, SCORES_FILE), result)
  present = [v for v in VARIABLES if table and all(v in row for row in table)]
  matrix = np.corrcoef(np.asarray([[row[v] for v in present] for row in table], float).T)
  matrix = np.atleast_2d(matrix)
  correlation_heatmap(os.path.join(out_dir, HEATMAP_FILE), present, matrix,
                      "Pearson correlation over rated responses")
  write_atomic(os.path.join(out_dir, os.path.splitext(HEATMAP_FILE)[0] + ".json"),
              {"variables": present, "pearson": np.where(np.isfinite(matrix), matrix,
                                                         None).tolist(), "n": len(table)})
  return result


def correlation_heatmap(path: str, names: list[str], matrix: np.ndarray, title: str) -> None:
  """A correlation matrix as a labelled heatmap, each cell's value written in it."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 1.1 * len(names) + 1.5))
  im = ax.imshow(np.nan_to_num(matrix), vmin=-1, vmax=1, cmap="coolwarm")
  ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
  ax.set_yticks(range(len(names)), names)
  for i in range(len(names)):
    for j in range(len(names)):
      ax.text(j, i, "n/a" if not np.isfinite(matrix[i, j]) else f"{matrix[i, j]:.2f}",
              ha="center", va="center", fontsize=8)
  fig.colorbar(im, ax=ax, fraction=0.046)
  ax.set_title(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
