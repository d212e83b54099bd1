"""`launch/compare.py`: every `test_metrics.json` under a root in one table (CSV and print),
a bar chart of the main metrics beside the original's published figures, and random test
examples side by side across models with their per-example scores."""

from __future__ import annotations

import csv
import json
import os
import random

from empathy_jax.data.dialogue_dataset import read_json
from empathy_jax.errors import DatasetError, Problem
from empathy_jax.evaluation import metrics as metric_list
from empathy_jax.evaluation.suite import read_test_data

# The original's key order (ORIGINAL_FORMATS.md, "Testing and metrics"), the published table's
# columns (plus the reward) and the per-example scores shown beside each output: all from the
# metric list. Keys outside KEY_ORDER follow it, sorted.
KEY_ORDER = metric_list.key_order()
MAIN = metric_list.published_keys()
EXAMPLE_SCORES = metric_list.example_keys()
METRICS_FILE = "test_metrics.json"


def find_runs(root: str) -> dict[str, str]:
  """{name: folder} of every folder under `root` holding a test_metrics.json; names are the
  folders relative to `root`."""
  if not os.path.isdir(root):
    raise DatasetError([Problem(root, None, "is not a folder")])
  found = {}
  for folder, dirs, files in os.walk(root):
    dirs.sort()
    if METRICS_FILE in files:
      name = os.path.relpath(folder, root)
      found[os.path.basename(os.path.abspath(root)) if name == "." else name] = folder
  if not found:
    raise DatasetError([Problem(root, None, f"no {METRICS_FILE} under this folder")])
  return found


def read_metrics(folder: str) -> dict[str, float]:
  path = os.path.join(folder, METRICS_FILE)
  metrics = read_json(path)
  if not isinstance(metrics, dict):
    raise DatasetError([Problem(path, None, "expected an object of metric values")])
  bad = [k for k, v in metrics.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
  if bad:
    raise DatasetError([Problem(path, None, f"metric {bad[0]!r} is not a number")])
  return {k: float(v) for k, v in metrics.items()}


def ordered_keys(tables: list[dict]) -> list[str]:
  keys = {k for t in tables for k in t}
  return [k for k in KEY_ORDER if k in keys] + sorted(keys - set(KEY_ORDER))


def write_csv(path: str, rows: dict[str, dict[str, float]]) -> list[str]:
  keys = ordered_keys(list(rows.values()))
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["model", *keys])
    for name, metrics in rows.items():
      writer.writerow([name, *[repr(metrics[k]) if k in metrics else "" for k in keys]])
  return keys


def format_table(rows: dict[str, dict[str, float]], keys) -> str:
  width = max(len(n) for n in rows)
  head = f"{'model':<{width}}  " + "  ".join(f"{k:>12}" for k in keys)
  lines = [head, "-" * len(head)]
  for name, metrics in rows.items():
    cells = [f"{metrics[k]:>12.4g}" if k in metrics else f"{'-':>12}" for k in keys]
    lines.append(f"{name:<{width}}  " + "  ".join(cells))
  return "\n".join(lines)


def fmt(key: str, value) -> str:
  """A metric as the tables print it: 4 decimals (2 for perplexity), signed for rewards;
  values that round to zero print as 0.0000 (BLEU of a collapsed run is ~1e-232)."""
  if value is None or (isinstance(value, float) and value != value):
    return "—"
  if key == "ppl":
    return f"{value:.2f}"
  text = f"{value:+.4f}" if "reward" in key or key.startswith("diff") else f"{value:.4f}"
  return text.replace("-0.0000", "0.0000").replace("+0.0000", "0.0000")


def plot(path: str, ours: dict[str, dict], published: dict[str, dict]) -> dict:
  """A bar chart per main metric our runs have: ours, then the published runs (gray, hatched),
  the value on each bar, and the human targets' reward as a line on the reward panel."""
  metrics = [k for k in MAIN if any(k in m for m in ours.values())]
  data = {k: {"ours": {n: m[k] for n, m in ours.items() if k in m},
              "published": {n: m[k] for n, m in published.items() if k in m}}
          for k in metrics}
  if not metrics:
    return data
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  cols = min(3, len(metrics))
  rows = -(-len(metrics) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.8 * rows), squeeze=False)
  for ax, k in zip(axes.flat, metrics):
    names = [*data[k]["ours"], *data[k]["published"]]
    values = [*data[k]["ours"].values(), *data[k]["published"].values()]
    n_ours = len(data[k]["ours"])
    bars = ax.bar(range(len(values)), values,
                  color=["tab:blue"] * n_ours + ["tab:gray"] * (len(values) - n_ours))
    for bar in bars[n_ours:]:
      bar.set_hatch("//")
    ax.bar_label(bars, labels=[fmt(k, v) for v in values], fontsize=6, rotation=90,
                 padding=2)
    if k == "mean_reward_output":
      targets = [m["mean_reward_target"] for m in ours.values() if "mean_reward_target" in m]
      if targets:
        ax.axhline(targets[0], color="tab:green", linestyle="--",
                   label=f"human targets ({targets[0]:+.3f})")
        ax.legend(fontsize=7)
    ax.set_title(k)
    ax.set_ylabel({"ppl": "perplexity (log scale)", "mean_reward_output": "mean reward"}.get(
        k, "score (0-1)" if "accuracy" in k or k.startswith(("bleu", "dist")) else "mean level"),
        fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.margins(y=0.25)
    if k == "ppl":
      ax.set_yscale("log")
  fig.suptitle("ours (blue) and the original's published full-size results (gray, hatched)")
  return save_figure(fig, axes, len(metrics), path, data)


def save_figure(fig, axes, used: int, path: str, data, indent: int = 2):
  """Drops the grid's unused panels (no blank panel), writes the figure to `path` and its
  numbers as JSON beside it (`.json`); returns `data`."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  for ax in list(axes.flat)[used:]:
    fig.delaxes(ax)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  with open(os.path.splitext(path)[0] + ".json", "w", encoding="utf-8") as f:
    json.dump(data, f, indent=indent)
  return data



def side_by_side(runs: dict[str, str], count: int, seed: int) -> list[dict]:
  """`count` random test examples present in every run's test_data.json (matched by id):
  context, target, and each model's output with its per-example scores."""
  data = {}
  for name, folder in runs.items():
    path = os.path.join(folder, "test_data.json")
    if os.path.exists(path):
      data[name] = {r["id"]: r for r in read_test_data(path)}
  if not data or count <= 0:
    return []
  common = sorted(set.intersection(*(set(d) for d in data.values())), key=str)
  picks = random.Random(seed).sample(common, min(count, len(common)))
  out = []
  for i in picks:
    first = next(iter(data.values()))[i]
    out.append({"id": i, "context": first["context"], "target": first["target"],
                "outputs": {name: {"output": d[i]["output"],
                                   **{k: d[i][k] for k in EXAMPLE_SCORES if k in d[i]}}
                            for name, d in data.items()}})
  return out


def format_examples(examples: list[dict]) -> str:
  lines = []
  for ex in examples:
    lines.append(f"=== example {ex['id']}")
    for turn in ex["context"]:
      lines.append(f"  context: {turn}")
    lines.append(f"  target:  {ex['target']}")
    for name, out in ex["outputs"].items():
      scores = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in out.items() if k != "output")
      lines.append(f"  [{name}] {out['output']}" + (f"   ({scores})" if scores else ""))
  return "\n".join(lines)


def compare(root: str, output_dir: str, published_dir: str | None, num_examples: int,
            seed: int) -> dict:
  """Writes compare.csv, compare.png (+ compare.json, the plotted numbers) and
  compare_examples.json to `output_dir`; returns {"models", "keys", "table", "examples"}."""
  runs = find_runs(root)
  ours = {name: read_metrics(folder) for name, folder in runs.items()}
  published = {}
  if published_dir:
    published = {f"{name} (published)": read_metrics(folder)
                 for name, folder in find_runs(published_dir).items()}
  os.makedirs(output_dir, exist_ok=True)
  keys = write_csv(os.path.join(output_dir, "compare.csv"), ours)
  plot(os.path.join(output_dir, "compare.png"), ours, published)
  examples = side_by_side(runs, num_examples, seed)
  with open(os.path.join(output_dir, "compare_examples.json"), "w", encoding="utf-8") as f:
    json.dump(examples, f, indent=2, ensure_ascii=False)
  shown = [k for k in MAIN if k in keys]
  table = format_table({**ours, **published}, shown)
  return {"models": list(ours), "keys": keys, "table": table,
          "examples": format_examples(examples)}
