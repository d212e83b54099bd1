"""The survey's figures: the criteria's correlation heatmap (the original's) and each model's
ratings with their bootstrap 95% intervals (Elo and Bradley-Terry), per criterion."""

from __future__ import annotations

import numpy as np

from empathy_jax.evaluation.human_eval import correlation_heatmap
from empathy_jax.survey.ratings import CRITERIA, START


def heatmap(path: str, matrix: np.ndarray, answers: int) -> None:
  correlation_heatmap(path, list(CRITERIA), matrix,
                      f"Pearson correlation of the criteria ({answers} answers)")


def rating_intervals(path: str, names: dict[str, str], intervals: dict, k: float) -> None:
  """One panel per criterion: a row per model, Elo and Bradley-Terry with 95% intervals."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  ids = list(names)
  fig, axes = plt.subplots(1, len(CRITERIA), figsize=(5 * len(CRITERIA), 1.2 + 0.6 * len(ids)),
                           sharey=True, squeeze=False)
  y = np.arange(len(ids))
  for ax, criterion in zip(axes[0], CRITERIA):
    rows = [intervals[criterion][m] for m in ids]
    for key, offset, label in (("elo", -0.12, f"Elo (K={k:g}, answers in order)"),
                               ("bradley_terry", 0.12, "Bradley-Terry (order-free)")):
      mid = np.array([r[key] for r in rows])
      low = mid - np.array([r[key + "_low"] for r in rows])
      high = np.array([r[key + "_high"] for r in rows]) - mid
      ax.errorbar(mid, y + offset, xerr=[low, high], fmt="o", capsize=3, label=label)
    ax.axvline(START, color="grey", lw=0.8, ls="--")
    ax.set_title(criterion)
    ax.set_xlabel("rating (Elo points; start 1000)")
    ax.set_yticks(y, [names[m] for m in ids])
  axes[0][0].set_ylabel("model")
  axes[0][0].legend(loc="best", fontsize=8)
  fig.suptitle("Model ratings with bootstrap 95% intervals")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
