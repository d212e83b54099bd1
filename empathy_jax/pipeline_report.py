"""The pipeline's report: `report.md` beside PNGs (training curves per stage, the metrics of
SFT-only and SFT+PPO beside the original's published results) and sample responses, with the
numbers behind every plot in a `.json` next to it."""

from __future__ import annotations

import json
import os

from empathy_jax.evaluation import compare
from empathy_jax.training.metrics_log import read_scalars


def _curves(path: str, stage_dirs: dict[str, str], tags: dict[str, tuple]) -> dict:
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  data = {}
  for stage, run_dir in stage_dirs.items():
    scalars = read_scalars(run_dir)
    data[stage] = {tag: scalars[tag] for tag in tags[stage] if tag in scalars}
  panels = [(s, t) for s in data for t in data[s]]
  cols = 3
  rows = max(1, -(-len(panels) // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.2 * rows), squeeze=False)
  for ax, (stage, tag) in zip(axes.flat, panels):
    steps, values = zip(*data[stage][tag]) if data[stage][tag] else ((), ())
    ax.plot(steps, values, marker="o" if len(steps) < 20 else None)
    ax.set_title(f"{stage}: {tag}", fontsize=9)
    ax.set_xlabel("step")
  for ax in list(axes.flat)[len(panels):]:
    ax.axis("off")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  with open(os.path.splitext(path)[0] + ".json", "w", encoding="utf-8") as f:
    json.dump(data, f, indent=1)
  return data


def _markdown_table(rows: dict[str, dict], keys: list[str]) -> str:
  lines = ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
  for name, m in rows.items():
    lines.append(f"| {name} | " + " | ".join(f"{m[k]:.4g}" if k in m else "—" for k in keys)
                 + " |")
  return "\n".join(lines)


def write_report(out_dir: str, stage_dirs: dict[str, str], metrics: dict[str, dict],
                 test_dirs: dict[str, str], published_dir: str | None, num_samples: int) -> str:
  from empathy_jax.pipeline import CURVES  # pylint: disable=import-outside-toplevel

  os.makedirs(out_dir, exist_ok=True)
  _curves(os.path.join(out_dir, "curves.png"), stage_dirs, CURVES)
  published = {}
  if published_dir and os.path.isdir(published_dir):
    published = {f"{name} (published)": compare.read_metrics(folder)
                 for name, folder in compare.find_runs(published_dir).items()}
  compare.plot(os.path.join(out_dir, "metrics.png"), metrics, published)
  keys = [k for k in compare.MAIN if any(k in m for m in metrics.values())]
  examples = compare.side_by_side(test_dirs, num_samples, seed=0)
  lines = ["# Pipeline report", "",
           "## Runs", ""] + [f"- {stage}: `{d}`" for stage, d in stage_dirs.items()] + [
               "", "## Training curves", "", "![training curves](curves.png)", "",
               "## Test metrics: SFT-only vs SFT+PPO", "",
               _markdown_table(metrics, keys), "", "The original's published results:", "",
               _markdown_table(published, keys) if published else "(none given)", "",
               "![metrics](metrics.png)", "", "## Sample responses", ""]
  for ex in examples:
    lines.append(f"**Example {ex['id']}**  ")
    lines += [f"> {turn}  " for turn in ex["context"]]
    lines.append(f"- target: {ex['target']}")
    for name, o in ex["outputs"].items():
      reward = f" (reward {o['reward_output']:+.3f})" if "reward_output" in o else ""
      lines.append(f"- {name}: {o['output']}{reward}")
    lines.append("")
  path = os.path.join(out_dir, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return path
