"""A preference a tiny model can learn, written as a reward dataset (for the reward-model, DPO
and GRPO tests)."""

import json
import os
import random

from conftest import ED_DIR

WORD = "wonderful"


def synthetic_preference(out, n_contexts=48, seed=0):
  """Contexts from EmpatheticDialogues, four responses each, two of which contain WORD;
  a response with WORD is preferred (factor +-1 or +-2) to one without, and two responses
  alike are rated a tie."""
  rng = random.Random(seed)
  contexts = json.load(open(os.path.join(ED_DIR, "train", "contexts.json")))
  targets = json.load(open(os.path.join(ED_DIR, "train", "targets.json")))
  # Short one-turn contexts and short responses: one length bucket, one compiled step.
  keep = [i for i in range(len(contexts)) if len(contexts[i]) == 1
          and len(contexts[i][0]) < 80 and len(targets[i]) < 60][:n_contexts * 5]
  ctx, resp, ratings = [], [], []
  for k in range(n_contexts):
    ctx.append(contexts[keep[k]])
    texts = [targets[keep[n_contexts + 4 * k + j]] for j in range(4)]
    marked = set(rng.sample(range(4), 2))
    texts = [f"{t} that is {WORD}" if j in marked else t for j, t in enumerate(texts)]
    resp.append(texts)
    pairs = []
    for a in range(4):
      for b in range(a + 1, 4):
        strength = rng.choice([1.0, 2.0])
        if (a in marked) == (b in marked):
          pairs.append([a, b, 0.0])
        else:
          pairs.append([a, b, -strength if a in marked else strength])
    ratings.append(pairs)
  os.makedirs(os.path.join(out, "train"))
  for name, value in (("contexts", ctx), ("responses", resp), ("ratings", ratings)):
    with open(os.path.join(out, "train", f"{name}.json"), "w") as f:
      json.dump(value, f)
  return out
