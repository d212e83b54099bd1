"""Generation on a data-sharded mesh with per-shard context packing, for the packing tests: run
in the test process (8 CPU devices), or as one process of a two-process `jax.distributed` job:
  python tests/sharded_generation.py MODEL_DIR OUT.npz COORDINATOR PROCESS_ID
(2 processes of 4 devices each, one 8-way data axis over both; process 0 writes the tokens)."""

import os
import re
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_fixtures as hf  # noqa: E402
from empathy_jax import sharding  # noqa: E402
from empathy_jax.data.dialogue_dataset import load_dialogue_split  # noqa: E402
from empathy_jax.generation.config import GenerationConfig  # noqa: E402
from empathy_jax.generation.search import generate_ids  # noqa: E402
from empathy_jax.models import packing  # noqa: E402
from empathy_jax.models.loading import load_model  # noqa: E402

ED_TEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets",
                       "empathetic_dialogues", "test")
ROWS = 64  # 8 examples per shard on 8 shards: enough for packing to pay in every shard
COLLECTIVES = ("all-gather", "all-to-all", "collective-permute", "reduce-scatter")


def generate(model_dir, mesh, shards):
  """(tokens_BxN on the host, {collective: count} of the compiled program) for the first ROWS
  test contexts split over the mesh's batch axes, packed by a plan for `shards` shards (None:
  unpacked)."""
  loaded = load_model(model_dir)
  batch = hf.real_batch(loaded.fmt, load_dialogue_split(ED_TEST, data_erasure_level=0.0), ROWS)
  params = sharding.shard_tree(loaded.params, sharding.param_shardings(loaded.model, mesh))
  inputs = sharding.global_batch({"ids": batch.context_ids_BxC, "mask": batch.context_mask_BxC,
                                  "rows": np.arange(ROWS)}, mesh)
  plan = None
  if shards is not None:
    plan = packing.encoder_plan(loaded.model, batch.context_mask_BxC, shards)
    assert plan is not None and plan.rows < ROWS, "the test batch should pack"
    plan = packing.place(plan, mesh)
  args = (loaded.model, params, inputs["ids"], inputs["mask"],
          GenerationConfig(max_new_tokens=3, eos_token_id=1, pad_token_id=0),
          jax.random.PRNGKey(0), inputs["rows"], plan)
  hlo = generate_ids.lower(*args).compile().as_text()
  counts = {name: len(re.findall(rf"\b{name}(?:-start)?\(", hlo)) for name in COLLECTIVES}
  return sharding.to_host(generate_ids(*args).tokens_BxN), counts


def main(model_dir, out, coordinator, process_id):
  sharding.initialize_distributed(coordinator, 2, int(process_id))
  mesh = sharding.make_mesh(sharding.MeshConfig(data=8))
  tokens, counts = generate(model_dir, mesh, sharding.batch_shards(mesh))
  if jax.process_index() == 0:
    np.savez(out, tokens=tokens, **counts)


if __name__ == "__main__":
  main(*sys.argv[1:])
