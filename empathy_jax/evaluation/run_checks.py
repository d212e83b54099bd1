"""What a report must say about a policy's outputs before any metric: whether its answers
collapsed (degenerate-output detection), and whether a change in mean reward between two
policies on the same rows is more than noise (a paired bootstrap interval)."""

from __future__ import annotations

import collections
import dataclasses
from typing import Sequence

import numpy as np

# One output on more than this share of the rows is called a collapse.
COLLAPSE_SHARE = 0.10


@dataclasses.dataclass(frozen=True)
class Degeneracy:
  rows: int
  distinct: int  # distinct outputs (exact strings, stripped)
  top_output: str
  top_share: float  # share of rows that are the most common output
  empty_share: float

  @property
  def distinct_share(self) -> float:
    return self.distinct / self.rows if self.rows else 0.0

  @property
  def collapsed(self) -> bool:
    return self.top_share > COLLAPSE_SHARE

  def warning(self) -> str | None:
    if not self.collapsed:
      return None
    return (f"degenerate outputs: {self.top_share:.0%} of the {self.rows} rows are the same "
            f"answer ({self.top_output!r}); {self.distinct} distinct answers in all")


def degeneracy(outputs: Sequence[str]) -> Degeneracy:
  texts = [o.strip() for o in outputs]
  counts = collections.Counter(texts)
  top, top_n = counts.most_common(1)[0] if counts else ("", 0)
  n = len(texts)
  return Degeneracy(rows=n, distinct=len(counts), top_output=top,
                    top_share=top_n / n if n else 0.0,
                    empty_share=counts.get("", 0) / n if n else 0.0)


@dataclasses.dataclass(frozen=True)
class PairedChange:
  mean_change: float  # mean over rows of (after - before)
  low: float  # the bootstrap interval's bounds
  high: float
  rows: int
  level: float

  @property
  def significant_increase(self) -> bool:
    return self.low > 0.0

  @property
  def significant_decrease(self) -> bool:
    return self.high < 0.0


RESAMPLES = 10_000


def paired_bootstrap(before: Sequence[float], after: Sequence[float],
                     resamples: int = RESAMPLES,
                     level: float = 0.95, seed: int = 0) -> PairedChange:
  """The mean of `after - before` over rows scored by both, with a percentile bootstrap
  interval: rows are resampled with replacement, keeping each row's pair together."""
  b, a = np.asarray(before, np.float64), np.asarray(after, np.float64)
  if b.shape != a.shape or b.ndim != 1 or b.size == 0:
    raise ValueError(f"paired_bootstrap needs two equal, non-empty lists of per-row values, "
                     f"got {b.shape} and {a.shape}")
  diff = a - b
  rng = np.random.default_rng(seed)
  means = np.empty(resamples)
  for start in range(0, resamples, 1000):  # bounded memory for large splits
    idx = rng.integers(0, diff.size, size=(min(1000, resamples - start), diff.size))
    means[start:start + len(idx)] = diff[idx].mean(axis=1)
  tail = (1.0 - level) / 2.0
  low, high = np.quantile(means, [tail, 1.0 - tail])
  return PairedChange(float(diff.mean()), float(low), float(high), int(diff.size), level)
