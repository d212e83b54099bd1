"""`launch/multi_turn.py`: the original's multi-turn study. Sessions of speaker turns, each
answered by the dialogue model and the answer scored by the reward model (with the whole
history as its context); `multi_turn.json` after every turn and a plot `multi_turn.png` of
reward per turn per session. Speaker turns come from a person at the terminal, or from a
`--speaker_file` (a JSON list of sessions, each a list of speaker turns), which runs unattended
and batched: every session's turn t in one batch."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from empathy_jax.data.dialogue_dataset import read_json
from empathy_jax.errors import DatasetError, Problem
from empathy_jax.settings import setting


@dataclasses.dataclass(frozen=True, kw_only=True)
class MultiTurnConfig:
  """`launch/multi_turn.py`'s settings (its flags)."""

  reward_model_dir: str | None = setting(None, "Reward model scoring each answer (required).")
  output_dir: str | None = setting(None, "Where multi_turn.json and .png go (required).")
  max_turns: int = setting(5, "Speaker turns per session.")
  max_sessions: int = setting(5, "Sessions.")
  speaker_file: str | None = setting(None, "JSON list of sessions of speaker turns: run "
                                     "unattended and batched.")
  batch_size: int = setting(8, "Rows per generation program (speaker_file).")
  instruction: str | None = setting(None, "GODEL's instruction (default: its own).")
  seed: int = setting(0, "Sampling seed.")

  def __post_init__(self):
    for name in ("reward_model_dir", "output_dir"):
      if not getattr(self, name):
        raise ValueError(f"--{name} is required")
    if self.max_turns < 1 or self.max_sessions < 1 or self.batch_size < 1:
      raise ValueError("--max_turns, --max_sessions and --batch_size must be >= 1")

RESULTS_FILE = "multi_turn.json"
PLOT_FILE = "multi_turn.png"


def read_speaker_file(path: str, max_sessions: int, max_turns: int) -> list[list[str]]:
  sessions = read_json(path)
  if not isinstance(sessions, list) or not sessions:
    raise DatasetError([Problem(path, None, "expected a non-empty list of sessions")])
  problems = [Problem(path, i, "a session must be a non-empty list of non-empty strings")
              for i, s in enumerate(sessions)
              if not (isinstance(s, list) and s and all(isinstance(t, str) and t.strip()
                                                          for t in s))]
  if problems:
    raise DatasetError(problems)
  return [[t.strip() for t in s[:max_turns]] for s in sessions[:max_sessions]]


def save(out_dir: str, sessions: list[dict]) -> None:
  os.makedirs(out_dir, exist_ok=True)
  tmp = os.path.join(out_dir, RESULTS_FILE + ".tmp")
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(sessions, f, indent=2, ensure_ascii=False)
  os.replace(tmp, os.path.join(out_dir, RESULTS_FILE))


def run_batched(speaker_sessions: list[list[str]], responder, scorer, out_dir: str,
                progress=None) -> list[dict]:
  """Every session's turn t answered and scored in one batch, t = 1..the longest session."""
  results = [{"session": i, "turns": []} for i in range(len(speaker_sessions))]
  histories: list[list[str]] = [[] for _ in speaker_sessions]
  for t in range(max(len(s) for s in speaker_sessions)):
    active = [i for i, s in enumerate(speaker_sessions) if t < len(s)]
    for i in active:
      histories[i].append(speaker_sessions[i][t])
    replies = responder.reply([histories[i] for i in active])
    rewards = scorer([list(histories[i]) for i in active], replies)
    for i, reply, reward in zip(active, replies, rewards):
      results[i]["turns"].append({"speaker": speaker_sessions[i][t], "response": reply,
                                  "reward": float(reward)})
      histories[i].append(reply)
    save(out_dir, results)
    if progress:
      progress(t + 1)
  return results


def plot(out_dir: str, sessions: list[dict]) -> dict:
  """multi_turn.png: reward per turn, a line per session (up to 20 drawn) and the mean over
  sessions; returns the plotted series."""
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  series = [[turn["reward"] for turn in s["turns"]] for s in sessions if s["turns"]]
  longest = max((len(s) for s in series), default=0)
  mean = [float(np.mean([s[t] for s in series if t < len(s)])) for t in range(longest)]
  fig, ax = plt.subplots(figsize=(7, 4))
  for i, s in enumerate(series[:20]):
    ax.plot(range(1, len(s) + 1), s, marker="o", alpha=0.5, label=f"session {i + 1}"
            if len(series) <= 10 else None)
  ax.plot(range(1, longest + 1), mean, color="black", linewidth=2.5, label="mean")
  ax.set_xlabel("turn")
  ax.set_ylabel("reward")
  ax.set_title(f"reward per turn ({len(series)} sessions)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(out_dir, PLOT_FILE), dpi=100)
  plt.close(fig)
  return {"sessions": series, "mean": mean}
