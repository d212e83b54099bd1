"""The pipeline's report: `report.md` (beside its PNGs) and `report.html` (one file, images
embedded), both rendered from the same blocks, with the numbers behind every plot in a `.json`.

It leads with what a researcher needs first: whether PPO changed the held-out reward (a paired
bootstrap interval over the test rows both policies answered) and whether either policy's
outputs collapsed. Then the run (models, sizes, data, time per stage, hardware), the metrics
beside the original's published full-size results (with the caveat that they are not
comparable in level), the training curves and sample responses.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform

from empathy_jax.evaluation import compare
from empathy_jax.evaluation.compare import fmt
from empathy_jax.evaluation.compare import plot as plot_metrics
from empathy_jax.evaluation.run_checks import (COLLAPSE_SHARE, RESAMPLES, degeneracy,
                                              paired_bootstrap)
from empathy_jax.training.metrics_log import read_scalars

# Per stage: (TensorBoard tag, y-axis label, chance level or None); and the x-axis label.
CURVES = {
    "sft": ([("train_loss", "train loss (nats/token)", None),
             ("val_loss", "validation loss (nats/token)", None)], "optimizer step"),
    "reward": ([("train_loss", "train loss (pairwise)", None),
                ("val_loss", "validation loss (pairwise)", None),
                ("val_accuracy", "validation pair accuracy", 0.5)], "optimizer step"),
    "ppo": ([("train_objective/scores", "rollout reward (mean)", None),
             ("train_objective/kl", "KL to the SFT policy (nats)", None),
             ("val_reward", "validation reward (mean)", None)], "PPO iteration"),
    "dpo": ([("train_loss", "train loss (DPO)", None),
             ("val_loss", "held-out loss (DPO)", None),
             ("val_rewards/accuracies", "held-out implicit-reward accuracy", 0.5)],
            "optimizer step"),
    "grpo": ([("train_reward", "sampled reward (mean)", None),
              ("train_kl", "KL to the SFT policy (nats/token)", None),
              ("val_reward", "validation reward (mean)", None)], "generation"),
}
CURVES["rloo"] = CURVES["grpo"]
# PPO "without collapse": its dist-2 at most this share below SFT's, and at least this share
# of SFT's distinct outputs.
DIST2_MARGIN, DISTINCT_MARGIN = 0.25, 0.5
CAVEAT = ("The published rows are the original's full-size models (GODEL-large and others, "
          "trained on the whole datasets on GPUs, with its released classifiers). Ours are "
          "demo-size: a small model trained for minutes on a CPU, tested on a slice of the test "
          "split. Compare SFT-only with the trained policies within our rows; the published rows "
          "say what the "
          "full method reaches, not what this run should.")


# -- blocks: one list, rendered to Markdown and to HTML ---------------------------------------


def _md(blocks) -> str:
  out = []
  for kind, *args in blocks:
    if kind == "h":
      out.append("#" * args[0] + " " + args[1])
    elif kind == "p":
      out.append(args[0])
    elif kind == "warn":
      out.append(f"> **Warning:** {args[0]}")
    elif kind == "list":
      out.append("\n".join(f"- {item}" for item in args[0]))
    elif kind == "table":
      header, rows = args
      out.append("\n".join(["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
                           + ["| " + " | ".join(r) + " |" for r in rows]))
    elif kind == "img":
      out.append(f"![{args[1]}]({os.path.basename(args[0])})")
    elif kind == "example":
      ex = args[0]
      lines = [f"**Example {ex['id']}**  "] + [f"> {t}  " for t in ex["context"]]
      lines.append(f"- target: {ex['target']}")
      lines += [f"- {name}: {text}" for name, text in ex["outputs"]]
      out.append("\n".join(lines))
  return "\n\n".join(out) + "\n"


def _html(blocks, title: str) -> str:
  e = html.escape
  out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
         "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
         "text-align:right}td:first-child,th:first-child{text-align:left}"
         ".warn{background:#fff3cd;border-left:4px solid #d39e00;padding:6px 10px}"
         "img{max-width:100%}blockquote{color:#555;margin:0 0 0 1em}</style></head><body>"]
  for kind, *args in blocks:
    if kind == "h":
      out.append(f"<h{args[0]}>{e(args[1])}</h{args[0]}>")
    elif kind == "p":
      out.append(f"<p>{e(args[0]).replace('**', '')}</p>")
    elif kind == "warn":
      out.append(f"<p class='warn'><b>Warning:</b> {e(args[0])}</p>")
    elif kind == "list":
      out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in args[0]) + "</ul>")
    elif kind == "table":
      header, rows = args
      out.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"
                 + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                           for r in rows) + "</table>")
    elif kind == "img":
      with open(args[0], "rb") as f:
        data = base64.b64encode(f.read()).decode()
      out.append(f"<p><img alt='{e(args[1])}' src='data:image/png;base64,{data}'></p>")
    elif kind == "example":
      ex = args[0]
      out.append(f"<p><b>Example {ex['id']}</b></p><blockquote>"
                 + "<br>".join(e(t) for t in ex["context"]) + "</blockquote><ul>"
                 + f"<li>target: {e(ex['target'])}</li>"
                 + "".join(f"<li>{e(n)}: {e(t)}</li>" for n, t in ex["outputs"]) + "</ul>")
  out.append("</body></html>")
  return "\n".join(out)


# -- plots ------------------------------------------------------------------------------------


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  return plt


def plot_curves(path: str, stage_dirs: dict[str, str], target_reward: float | None) -> dict:
  """One panel per logged curve that has data (no blank panels), each with its stage's own
  x-axis, labelled axes, a chance line on accuracies and the human targets' reward on the
  PPO validation reward. Returns the data plotted ({} and no file when nothing was logged)."""
  data = {}
  for stage, run_dir in stage_dirs.items():
    if stage not in CURVES:
      continue
    scalars = read_scalars(run_dir)
    data[stage] = {tag: scalars[tag] for tag, _, _ in CURVES[stage][0] if scalars.get(tag)}
  panels = [(s, tag, label, chance) for s in data for tag, label, chance in CURVES[s][0]
            if tag in data[s]]
  if not panels:
    return {}
  plt = _pyplot()
  cols = min(3, len(panels))
  rows = -(-len(panels) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.4 * rows), squeeze=False)
  for ax, (stage, tag, label, chance) in zip(axes.flat, panels):
    steps, values = zip(*data[stage][tag])
    ax.plot(steps, values, marker="o" if len(steps) < 20 else None, label=tag)
    if chance is not None:
      ax.axhline(chance, color="gray", linestyle=":", label=f"chance ({chance:g})")
    reference = stage in ("ppo", "grpo", "rloo") and tag == "val_reward" and (
        target_reward is not None)
    if reference:
      ax.axhline(target_reward, color="tab:green", linestyle="--",
                 label=f"human targets ({target_reward:+.3f})")
    if chance is not None or reference:
      ax.legend(fontsize=7)
    ax.set_title(f"{stage}: {tag}", fontsize=9)
    ax.set_xlabel(CURVES[stage][1])
    ax.set_ylabel(label, fontsize=8)
  return compare.save_figure(fig, axes, len(panels), path, data, indent=1)


# -- the report ---------------------------------------------------------------------------------


def _rows(test_dir: str) -> dict[int, dict]:
  with open(os.path.join(test_dir, "test_data.json"), encoding="utf-8") as f:
    return {r["id"]: r for r in json.load(f)}


def headline(rows: dict[str, dict[int, dict]], before: str = "SFT",
             after: str = "SFT+PPO") -> dict:
  """The change in mean held-out reward from `before` to `after` over the rows both answered,
  with its paired bootstrap 95% interval, as numbers and as the sentence the report leads with."""
  a, b = rows[before], rows[after]
  ids = sorted(i for i in a if i in b and "reward_output" in a[i] and "reward_output" in b[i])
  if not ids:
    return {"text": "No reward was computed on the test rows (no reward model): the report "
                    f"cannot say whether {after.split('+')[-1]} changed the reward.", "rows": 0}
  change = paired_bootstrap([a[i]["reward_output"] for i in ids],
                            [b[i]["reward_output"] for i in ids])
  verdict = ("an increase: the interval is above zero" if change.significant_increase else
             "a decrease: the interval is below zero" if change.significant_decrease else
             "not distinguishable from no change: the interval contains zero")
  text = (f"{after.split('+')[-1]} changed mean held-out reward by {change.mean_change:+.4f} "
          f"[95% CI {change.low:+.4f}, {change.high:+.4f}] on {change.rows} test rows "
          f"(paired bootstrap, {RESAMPLES:,} resamples): {verdict}.")
  return {"text": text, "rows": change.rows, "mean_change": change.mean_change,
          "low": change.low, "high": change.high}


def diversity_check(checks: dict, metrics: dict, before: str = "SFT",
                    after: str = "SFT+PPO") -> dict | None:
  """Whether the trained policy kept the SFT policy's diversity within the stated margins."""
  if before not in checks or after not in checks:
    return None
  d2 = (metrics.get(before, {}).get("dist-2"), metrics.get(after, {}).get("dist-2"))
  if None in d2:
    return None
  ok = (d2[1] >= (1 - DIST2_MARGIN) * d2[0]
        and checks[after].distinct >= DISTINCT_MARGIN * checks[before].distinct)
  change = (d2[1] / d2[0] - 1) if d2[0] else 0.0
  text = (f"Diversity, {after} against {before}: {checks[after].distinct} distinct outputs "
          f"against {checks[before].distinct}, dist-2 {d2[1]:.4f} against {d2[0]:.4f} "
          f"({change:+.0%}). "
          + ("Within the stated margins" if ok else f"Outside the stated margins: "
             f"{after.split('+')[-1]} reduced diversity")
          + f" (dist-2 at most {DIST2_MARGIN:.0%} below, at least "
            f"{DISTINCT_MARGIN:.0%} of the distinct outputs).")
  return {"ok": ok, "text": text}


def _hardware() -> str:
  import jax  # pylint: disable=import-outside-toplevel

  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  devices = jax.devices()
  return (f"{cpu}, {os.cpu_count()} CPU cores; JAX {jax.__version__} on "
          f"{len(devices)} {devices[0].platform.upper()} device(s) ({devices[0].device_kind})")


def write_report(out_dir: str, stage_dirs: dict[str, str], metrics: dict[str, dict],
                 test_dirs: dict[str, str], published_dir: str | None, num_samples: int,
                 summary: list[tuple[str, ...]] | None = None, kls: dict | None = None,
                 train_times: dict | None = None, own_classifiers: list | None = None) -> str:
  """Writes report.md, report.html and their plots; returns report.md's path. `summary`: rows
  of (stage, model, parameters, data, time) for the run table. The policies after "SFT" in
  `test_dirs` (SFT+PPO, SFT+DPO, ...) are each compared with it; `kls`: their KL to the SFT
  policy (`evaluation.policy_kl`), `train_times`: their training time, for the comparison;
  `own_classifiers`: the metric classifiers trained here (their metrics are marked so)."""
  os.makedirs(out_dir, exist_ok=True)
  first = next(iter(metrics.values()), {})
  target_reward = first.get("mean_reward_target")
  curves = os.path.join(out_dir, "curves.png")
  has_curves = bool(plot_curves(curves, stage_dirs, target_reward))
  published = {}
  if published_dir and os.path.isdir(published_dir):
    published = {f"{name} (published)": compare.read_metrics(folder)
                 for name, folder in compare.find_runs(published_dir).items()}
  bars = os.path.join(out_dir, "metrics.png")
  plot_metrics(bars, metrics, published)
  rows = {name: _rows(d) for name, d in test_dirs.items()}
  trained = [n for n in rows if n != "SFT"] if "SFT" in rows else []
  heads = {n: headline(rows, "SFT", n) for n in trained}
  head = heads[trained[0]] if trained else {"text": "Only one policy was tested.", "rows": 0}
  checks = {name: degeneracy([r["output"] for r in policy_rows.values()])
            for name, policy_rows in rows.items()}
  diversities = {n: diversity_check(checks, metrics, "SFT", n) for n in trained}
  diversity = diversities[trained[0]] if trained else None
  kls = kls or {}
  with open(os.path.join(out_dir, "headline.json"), "w", encoding="utf-8") as f:
    json.dump({**head, "diversity": diversity, "outputs": {n: {"rows": c.rows, "distinct": c.distinct,
                                       "top_output": c.top_output, "top_share": c.top_share,
                                       "collapsed": c.collapsed} for n, c in checks.items()},
               "algorithms": {n: {**heads[n], "diversity": diversities[n], "kl": kls.get(n)}
                              for n in trained}},
              f, indent=2)

  blocks = [("h", 1, "Pipeline report")]
  if not trained:
    blocks.append(("p", f"**{head['text']}**"))
  for n in trained:
    blocks.append(("p", f"**{heads[n]['text']}**"))
    if diversities[n] is not None:
      blocks.append(("p" if diversities[n]["ok"] else "warn", diversities[n]["text"]))
  if len(trained) > 1 or kls:
    blocks += [("h", 2, "Algorithms on the same test rows"),
               ("table", ["policy", "held-out reward change [95% CI]",
                          "KL to SFT (nats/response)", "dist-2", "distinct outputs",
                          "training time"],
                [[n, (f"{heads[n]['mean_change']:+.4f} [{heads[n]['low']:+.4f}, "
                      f"{heads[n]['high']:+.4f}]") if heads[n]["rows"] else "—",
                  (f"{kls[n]['kl']:.3f} ± {kls[n]['kl_sem']:.3f}" if n in kls else "—"),
                  fmt("dist-2", metrics.get(n, {}).get("dist-2")),
                  f"{checks[n].distinct} of {checks[n].rows}",
                  (train_times or {}).get(n, "—")] for n in trained]),
               ("p", "KL: the mean over the test contexts of log p(policy) − log p(SFT) "
                     "summed over one response sampled from the policy (temperature 1); ± its "
                     "standard error.")]
  blocks += [("warn", f"{name}: {c.warning()}") for name, c in checks.items() if c.collapsed]
  blocks += [("h", 2, "Outputs"),
             ("table", ["policy", "rows", "distinct outputs", "most common output",
                        "its share", "dist-2"],
              [[n, str(c.rows), f"{c.distinct} ({c.distinct_share:.0%})", c.top_output[:80],
                f"{c.top_share:.1%}", fmt("dist-2", metrics.get(n, {}).get("dist-2"))]
               for n, c in checks.items()]),
             ("p", f"An output on more than {COLLAPSE_SHARE:.0%} of the rows is flagged as a "
                   f"collapse (degenerate outputs).")]
  blocks += [("h", 2, "Run")]
  if summary:
    blocks.append(("table", ["stage", "model", "parameters", "data", "time"],
                   [list(r) for r in summary]))
  blocks += [("list", [f"{stage}: {d}" for stage, d in stage_dirs.items()]),
             ("p", f"Hardware: {_hardware()}.")]
  keys = [k for k in compare.MAIN if any(k in m for m in metrics.values())]
  blocks += [("h", 2, "Test metrics: " + " vs ".join(metrics)),
             ("table", ["model", *keys], [[n, *(fmt(k, m.get(k)) for k in keys)]
                                           for n, m in metrics.items()])]
  if target_reward is not None:
    blocks.append(("p", f"The human targets' mean reward on the same rows: "
                        f"{target_reward:+.4f}."))
  if own_classifiers:
    blocks.append(("p", f"Emotion, intent and EPITOME metrics are computed with classifiers "
                        f"trained here ({', '.join(own_classifiers)}; `launch/train_classifier.py`"
                        f", small models from random weights), not with the classifiers the "
                        f"original used (Lee et al.'s emotion and intent models, Sharma et al.'s "
                        f"EPITOME): comparable between our rows, not with the published ones."))
  blocks += [("h", 3, "The original's published results (full-size, not comparable in level)"),
             ("p", CAVEAT)]
  if published:
    blocks.append(("table", ["model", *keys], [[n, *(fmt(k, m.get(k)) for k in keys)]
                                                for n, m in published.items()]))
  blocks.append(("img", bars, "test metrics, ours and published"))
  if has_curves:
    blocks += [("h", 2, "Training curves"), ("img", curves, "training curves")]
  blocks.append(("h", 2, "Sample responses"))
  for ex in compare.side_by_side(test_dirs, num_samples, seed=0):
    outs = [(name, o["output"] + (f" (reward {o['reward_output']:+.3f})"
                                  if "reward_output" in o else ""))
            for name, o in ex["outputs"].items()]
    blocks.append(("example", {**ex, "outputs": outs}))
  path = os.path.join(out_dir, "report.md")
  with open(path, "w", encoding="utf-8") as f:
    f.write(_md(blocks))
  with open(os.path.join(out_dir, "report.html"), "w", encoding="utf-8") as f:
    f.write(_html(blocks, "Pipeline report"))
  return path
