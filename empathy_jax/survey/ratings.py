"""Model ratings from survey answers: the original's Elo (`process_survey_results.py`, kept
exactly: start 1000, A scores (2 - r)/4 and B (r + 2)/4, answers in order), its per-context
`response_ratings`, and what the original lacks: bootstrap 95% intervals of each model's Elo,
and a Bradley-Terry fit, which does not depend on the answers' order.

An answer's `ratings` are [empathy, relevance, fluency] on -2..2: negative prefers response
A, positive B.
"""

from __future__ import annotations

import math

import numpy as np

CRITERIA = ("Empathy", "Relevance", "Fluency")
START = 1000
ELO_SCALE = 400 / math.log(10)  # Bradley-Terry log-strengths on Elo's scale


def expected_score(rating_a: float, rating_b: float) -> float:
  return 1 / (1 + 10 ** ((rating_b - rating_a) / 400))


def elo(results: list[dict], model_ids: list[str], k: float = 32) -> dict[str, list]:
  """model_ratings.json: each model's three Elo ratings after every answer, in order. Both
  updates of an answer use the ratings from before it (as the original)."""
  ratings = {m: [START] * 3 for m in model_ids}
  for item in results:
    a, b, r = item["modelA"], item["modelB"], item["ratings"]
    for i in range(3):
      ra, rb = ratings[a][i], ratings[b][i]
      ratings[a][i] = ra + k * ((2 - r[i]) / 4 - expected_score(ra, rb))
      ratings[b][i] = rb + k * ((r[i] + 2) / 4 - expected_score(rb, ra))
  return ratings


def response_ratings(results: list[dict]) -> dict:
  """response_ratings.json: per context id, its text, the responses of every model rated on
  it (first seen first) and every answer on it (as process_survey_results.py builds it)."""
  out = {}
  for item in results:
    s = item["sample"]
    entry = out.setdefault(s["id"], {"context": s["context"], "responses": {}, "ratings": []})
    entry["responses"][item["modelA"]] = s["responseA"]
    entry["responses"][item["modelB"]] = s["responseB"]
    entry["ratings"].append({"A": item["modelA"], "B": item["modelB"],
                             "ratings": item["ratings"]})
  return out


def correlation(results: list[dict]) -> np.ndarray:
  """Pearson's correlation of the three criteria over the answers (3 x 3)."""
  return np.corrcoef(np.asarray([item["ratings"] for item in results], float).T)


# -- beyond the original ------------------------------------------------------------------------


def _arrays(results: list[dict], model_ids: list[str]):
  index = {m: i for i, m in enumerate(model_ids)}
  a = np.asarray([index[r["modelA"]] for r in results], np.int64)
  b = np.asarray([index[r["modelB"]] for r in results], np.int64)
  return a, b, np.asarray([r["ratings"] for r in results], float)


def elo_resampled(results: list[dict], model_ids: list[str], k: float, rows: np.ndarray
                  ) -> np.ndarray:
  """Elo on each row of `rows` (replicates x answers, indices into `results`), all replicates
  at once: (replicates, 3, models)."""
  a, b, r = _arrays(results, model_ids)
  reps = rows.shape[0]
  ratings = np.full((reps, 3, len(model_ids)), float(START))
  at = np.arange(reps)[:, None]
  crit = np.arange(3)[None, :]
  for t in range(rows.shape[1]):
    ia, ib, rt = a[rows[:, t]][:, None], b[rows[:, t]][:, None], r[rows[:, t]]
    ra, rb = ratings[at, crit, ia], ratings[at, crit, ib]
    ea = 1 / (1 + 10 ** ((rb - ra) / 400))
    ratings[at, crit, ia] = ra + k * ((2 - rt) / 4 - ea)
    ratings[at, crit, ib] = rb + k * ((rt + 2) / 4 - (1 - ea))
  return ratings


def bradley_terry(results: list[dict], model_ids: list[str], weights: np.ndarray | None = None,
                  ridge: float = 1e-4, iters: int = 100) -> tuple[np.ndarray, bool]:
  """Bradley-Terry strengths on Elo's scale (mean 1000), fitted by Newton's method to graded
  outcomes: an answer gives A the score (2 - r)/4 against B. `weights` (replicates x answers)
  counts each answer per bootstrap replicate. Returns ((replicates, 3, models), whether every
  fit converged). A small ridge keeps a model that never wins or never loses finite.

  The answers are first summed per ordered pair of models (their count and A's total score),
  so an iteration costs replicates x criteria x (pairs + models^3), whatever the answers."""
  a, b, r = _arrays(results, model_ids)
  m = len(model_ids)
  w = np.ones((1, len(results))) if weights is None else np.asarray(weights, float)
  pair, first = np.unique(a * m + b, return_inverse=True)
  pa, pb = pair // m, pair % m
  onehot = np.zeros((len(results), len(pair)))
  onehot[np.arange(len(results)), first] = 1
  count = w @ onehot  # (replicates, pairs)
  won = np.einsum("rn,nc,nu->rcu", w, (2 - r) / 4, onehot)  # A's total score per pair
  theta = np.zeros((w.shape[0], 3, m))
  converged = False
  every = (slice(None), slice(None))
  for _ in range(iters):
    p = 1 / (1 + np.exp(-(theta[..., pa] - theta[..., pb])))
    g = won - count[:, None] * p  # d loglik / d theta_A per pair
    h = count[:, None] * p * (1 - p)
    grad = -ridge * theta
    np.add.at(grad, every + (pa,), g)
    np.add.at(grad, every + (pb,), -g)
    hess = np.broadcast_to(-ridge * np.eye(m) - 1 / m, theta.shape + (m,)).copy()
    np.add.at(hess, every + (pa, pa), -h)
    np.add.at(hess, every + (pb, pb), -h)
    np.add.at(hess, every + (pa, pb), h)
    np.add.at(hess, every + (pb, pa), h)
    # (-1/m: strengths are known up to a shift; this holds their sum where it is.)
    step = np.linalg.solve(hess, grad[..., None])[..., 0]
    theta = theta - step
    if np.max(np.abs(step)) < 1e-10:
      converged = True
      break
  theta -= theta.mean(-1, keepdims=True)
  return START + ELO_SCALE * theta, converged


def intervals(results: list[dict], model_ids: list[str], k: float = 32,
              num_resamples: int = 1000, seed: int = 0) -> tuple[dict, bool]:
  """Per criterion and model: the original's Elo with a bootstrap 95% interval (answers drawn
  with replacement, in the drawn order), and the Bradley-Terry rating with its interval from
  the same draws; and whether every Bradley-Terry fit converged."""
  rng = np.random.default_rng(seed)
  rows = rng.integers(0, len(results), size=(num_resamples, len(results)))
  counts = np.zeros((num_resamples, len(results)))
  np.add.at(counts, (np.arange(num_resamples)[:, None], rows), 1)
  point_elo = elo(results, model_ids, k)
  boot_elo = elo_resampled(results, model_ids, k, rows)
  point_bt, point_ok = bradley_terry(results, model_ids)
  point_bt = point_bt[0]
  boot_bt, boot_ok = bradley_terry(results, model_ids, counts)
  out = {}
  for c, name in enumerate(CRITERIA):
    out[name] = {}
    for j, m in enumerate(model_ids):
      elo_lo, elo_hi = np.percentile(boot_elo[:, c, j], [2.5, 97.5])
      bt_lo, bt_hi = np.percentile(boot_bt[:, c, j], [2.5, 97.5])
      out[name][m] = {"elo": float(point_elo[m][c]), "elo_low": float(elo_lo),
                      "elo_high": float(elo_hi), "bradley_terry": float(point_bt[c, j]),
                      "bradley_terry_low": float(bt_lo), "bradley_terry_high": float(bt_hi)}
  return out, bool(point_ok and boot_ok)
