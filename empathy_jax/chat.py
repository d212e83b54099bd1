"""Replies of a dialogue model to dialogue histories, for the conversation tools
(`launch/interact.py`, `launch/multi_turn.py`): histories are formatted and truncated as the
model's family does, padded to a fixed number of rows and to the context length bucket, and
answered by the jitted generation, so a conversation compiles one program per bucket it
reaches, not one per turn."""

from __future__ import annotations

import jax
import numpy as np

from empathy_jax.data.pipeline import make_batcher
from empathy_jax.generation.config import resolve
from empathy_jax.generation.search import generate_ids


class Responder:
  """`reply(histories)`: one response per history (a list of turns, the last one the
  speaker's). `generation`: flags as test.py takes them (None: the checkpoint's
  generation_config); rows per program: `batch_size` (longer lists run in chunks)."""

  def __init__(self, loaded, generation: dict | None = None, batch_size: int = 1,
               seed: int = 0, instruction: str | None = None):
    self.loaded, self.batch_size, self.instruction = loaded, batch_size, instruction
    self.generation = dict(generation or {})
    self.batcher = make_batcher(loaded.fmt, batch_size)
    self.params = jax.device_put(loaded.params)
    self.rng = jax.random.PRNGKey(seed)
    self.calls = 0

  def context_ids(self, history: list[str]) -> list[int]:
    return self.loaded.fmt.encode_context(list(history), self.instruction).ids

  def reply(self, histories: list[list[str]]) -> list[str]:
    out: list[str] = []
    for start in range(0, len(histories), self.batch_size):
      out.extend(self._chunk(histories[start:start + self.batch_size]))
    return out

  def _chunk(self, histories):
    fmt, model = self.loaded.fmt, self.loaded.model
    ids = [self.context_ids(h) for h in histories]
    batch = self.batcher.make_batch(ids, [[fmt.pad_id]] * len(ids), range(len(ids)))
    cfg = resolve(self.generation, self.loaded.generation_config, model.cfg,
                  prompt_length=batch.context_ids_BxC.shape[1])
    self.calls += 1  # a new key per call: sampled replies differ between turns
    result = generate_ids(model, self.params, batch.context_ids_BxC, batch.context_mask_BxC,
                          cfg, jax.random.fold_in(self.rng, self.calls),
                          np.arange(self.batch_size, dtype=np.int32))
    tokens, mask = np.asarray(result.tokens_BxN), np.asarray(result.mask_BxN)
    return [fmt.decode(tokens[i][mask[i] == 1]).strip() for i in range(len(histories))]
