"""The reward dataset made from the survey's answers, as the original's
`generate_reward_dataset.py` makes it: per context its text, its responses (in the order
response_ratings lists them) and every answer as [index A, index B, factor] with
factor = 0.5 * empathy + 0.5 * relevance (negative prefers A; fluency is not used)."""

from __future__ import annotations

import os

from empathy_jax.errors import OutputExistsError
from empathy_jax.json_files import write_atomic

FILES = ("contexts.json", "responses.json", "ratings.json")


def reward_dataset(response_ratings: dict) -> tuple[list, list, list]:
  contexts, responses, ratings = [], [], []
  for item in response_ratings.values():
    models = list(item["responses"])
    contexts.append(item["context"])
    responses.append(list(item["responses"].values()))
    ratings.append([[models.index(r["A"]), models.index(r["B"]),
                     0.5 * r["ratings"][0] + 0.5 * r["ratings"][1]] for r in item["ratings"]])
  return contexts, responses, ratings


def write_reward_dataset(response_ratings: dict, output_dir: str, overwrite: bool) -> str:
  """OUTPUT_DIR/reward_dataset/train/{contexts,responses,ratings}.json, written as the
  original writes them (plain json.dump); returns the folder."""
  folder = os.path.join(output_dir, "reward_dataset", "train")
  present = [f for f in FILES if os.path.exists(os.path.join(folder, f))]
  if present and not overwrite:
    raise OutputExistsError(f"{folder}: holds a reward dataset already ({', '.join(present)}); "
                            f"pass --overwrite to replace it, or choose another --output_dir")
  os.makedirs(folder, exist_ok=True)
  for name, value in zip(FILES, reward_dataset(response_ratings)):
    write_atomic(os.path.join(folder, name), value, indent=None, ensure_ascii=True)
  return folder
