"""The reward model: a dialogue backbone, the original's scalar head and its `mean_offset`.

reward(context, response) = linear(dropout(mean of the backbone's last hidden states over the
response's tokens)) - mean_offset, as the original computes it (dropout only in training):
- encoder-decoder (GODEL, BlenderBot): the decoder's states, teacher-forced on the response in
  the model's own target format (`<PAD> text` for GODEL);
- decoder-only (DialoGPT): the states of the response span after the context.
The mean runs over every real position of the response, as the original's: its masks are
`token != <PAD>`, but `GODEL.forward` sets `target_mask[:, 0] = 1` in place on the tensor the
reward head then pools with, so GODEL's `<PAD>` start state counts; BlenderBot and DialoGPT have
no `<PAD>` inside a response. Folders written before this rule was fixed dropped tokens equal
to the pad id; their `model_info.json` has no `reward_pooling`, and they keep that rule
(`POOL_NON_PAD`). The vocabulary projection is never computed.

Stored as our model folder (the backbone, plus `extra/`: `reward_head` and `mean_offset`) or
as the original's Lightning `.ckpt` (`model.model.*`, `linear.weight` [1, D], `linear.bias` [1],
a scalar `mean_offset`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import sharding
from empathy_jax.data.pipeline import make_batcher
from empathy_jax.errors import CheckpointError
from empathy_jax.models import heads, loading, model_dir
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loaded import LoadedModel

HEAD_KEY = "reward_head"
OFFSET_KEY = "mean_offset"
POOLING_KEY = "reward_pooling"  # in model_info.json's metadata
POOL_ALL = "response_tokens"  # the original's: every real response position
POOL_NON_PAD = "non_pad_tokens"  # folders written before `reward_pooling` existed
POOLINGS = (POOL_ALL, POOL_NON_PAD)


@dataclasses.dataclass
class RewardModel:
  """backbone: the dialogue model (its params are the backbone's); head: `{"kernel": D,
  "bias": ()}`; mean_offset: subtracted from every reward at inference; pooling: which
  response positions the mean runs over (`POOL_ALL`, the original's, or `POOL_NON_PAD`)."""

  backbone: LoadedModel
  head: Any
  mean_offset: float = 0.0
  pooling: str = POOL_ALL

  def __post_init__(self):
    if self.pooling not in POOLINGS:
      raise CheckpointError(f"unknown reward pooling {self.pooling!r}; known: {POOLINGS}")

  @property
  def pool_exclude_id(self) -> int | None:
    """The token id left out of the mean (`response_rewards`' `exclude_id`), or None."""
    return self.backbone.fmt.pad_id if self.pooling == POOL_NON_PAD else None

  @property
  def params(self) -> dict:
    """The trainable tree: `{"backbone": ..., "head": ...}`."""
    return {"backbone": self.backbone.params, "head": self.head}

  def abstract_params(self) -> dict:
    """`params`' shapes, the backbone's with their logical-axis boxes (for shardings)."""
    return {"backbone": self.backbone.model.abstract_params(), "head": heads.abstract(self.head)}

  def with_params(self, params: dict, mean_offset: float | None = None) -> "RewardModel":
    backbone = dataclasses.replace(self.backbone, params=params["backbone"])
    offset = self.mean_offset if mean_offset is None else mean_offset
    return RewardModel(backbone, params["head"], float(offset), self.pooling)


def new_reward_model(backbone: LoadedModel, seed: int = 0) -> RewardModel:
  """A fresh head (torch.nn.Linear's initialisation) on a dialogue backbone."""
  head = heads.init_scalar_head(jax.random.PRNGKey(seed + 1), backbone.model.hidden_size)
  return RewardModel(backbone, head, 0.0, POOL_ALL)


def response_rewards(model, params, context_ids_BxC, context_mask_BxC, response_ids_NxT,
                     response_mask_NxT, *, exclude_id: int | None, dropout: float = 0.0,
                     deterministic: bool = True, rng=None):
  """Raw rewards [N] (no `mean_offset`) of N = B*g responses, g consecutive ones per context.
  `model` is the backbone's `DialogueModel`; `params` is `RewardModel.params`; the mean runs
  over `response_mask_NxT`, less the tokens equal to `exclude_id` when it is not None
  (`RewardModel.pool_exclude_id`)."""
  backbone_rng = head_rng = None
  if not deterministic:
    backbone_rng, head_rng = jax.random.split(rng)
  hidden = model.target_states(params["backbone"], context_ids_BxC, context_mask_BxC,
                               response_ids_NxT, response_mask_NxT, deterministic,
                               backbone_rng)
  pool = jnp.asarray(response_mask_NxT)
  if exclude_id is not None:
    pool = pool * (jnp.asarray(response_ids_NxT) != exclude_id)
  return heads.scalar_head(params["head"], heads.masked_mean(hidden, pool), dropout,
                           deterministic, head_rng)


# -- files -----------------------------------------------------------------------------------------


def save(reward: RewardModel, path: str, metadata: dict | None = None) -> None:
  """Our model folder: the backbone as any dialogue model, the head and offset in `extra/`."""
  extra = {HEAD_KEY: reward.head, OFFSET_KEY: np.asarray(reward.mean_offset, np.float32)}
  model_dir.save(reward.backbone, path, extra=extra,
                 metadata={**(metadata or {}), OFFSET_KEY: float(reward.mean_offset),
                           POOLING_KEY: reward.pooling})


def is_reward_folder(path: str) -> bool:
  found = model_dir.model_dir_of(path)
  return found is not None and HEAD_KEY in model_dir.read_info(found).get("extra", [])


def check_source(source: str) -> None:
  """Raises `CheckpointError` unless `source` looks like a reward model (our folder with a
  head, or a `.ckpt` / Lightning run folder), without reading weights."""
  if not os.path.exists(source):
    raise CheckpointError(f"{source}: no such folder or file")
  try:
    kind = loading.source_kind(source)
  except CheckpointError as e:
    raise CheckpointError(f"{source}: not a reward model (expected a reward folder of "
                          f"launch/train_reward_model.py, or an original reward .ckpt or "
                          f"Lightning run folder)") from e
  if kind == "ours" and not is_reward_folder(source):
    raise CheckpointError(f"{source}: a dialogue model folder without a reward head "
                          f"(train one with launch/train_reward_model.py)")
  if kind not in ("ours", "ckpt"):
    raise CheckpointError(f"{source}: a reward model is our reward folder or an original "
                          f"reward .ckpt, not a {kind} model")


def load(source: str, options: RuntimeOptions = RuntimeOptions(),
         trust_pickle: bool = False) -> RewardModel:
  """A reward model from our folder (or a run folder's `best/`) or an original `.ckpt` (a
  file or a Lightning run folder); anything else is an error that says what is missing."""
  check_source(source)
  if loading.source_kind(source) == "ours":
    backbone = model_dir.load(source, options)
    extra = model_dir.load_extra(source)
    head = jax.tree.map(lambda x: np.asarray(x, np.float32), extra[HEAD_KEY])
    pooling = model_dir.read_info(source).get("metadata", {}).get(POOLING_KEY, POOL_NON_PAD)
    if pooling not in POOLINGS:
      raise CheckpointError(f"{source}: unknown {POOLING_KEY} {pooling!r} in "
                            f"{model_dir.INFO}; known: {', '.join(POOLINGS)}")
    return RewardModel(backbone, head, float(np.asarray(extra[OFFSET_KEY])), pooling)
  ckpt_path = loading.find_ckpt(source)
  state, hparams, rest = loading.read_lightning(ckpt_path, trust_pickle)
  missing = [k for k in ("linear.weight", "linear.bias") if k not in rest]
  if missing:
    raise CheckpointError(f"{ckpt_path}: not a reward-model checkpoint (no "
                          f"{', '.join(missing)} in state_dict)")
  backbone = loading.loaded_from_lightning_state(ckpt_path, state, hparams, options)
  weight, bias = rest["linear.weight"], rest["linear.bias"]
  d = backbone.model.hidden_size
  if weight.shape != (1, d) or bias.size != 1:
    raise CheckpointError(f"{ckpt_path}: linear.weight {weight.shape} / linear.bias "
                          f"{bias.shape} do not fit a scalar head on width {d}")
  offset = float(np.asarray(rest.get(OFFSET_KEY, 0.0)).reshape(()))
  return RewardModel(backbone, {"kernel": weight[0].astype(np.float32),
                                "bias": np.asarray(bias.reshape(()), np.float32)}, offset,
                     POOL_ALL)


def export_lightning(reward: RewardModel, out_path: str) -> None:
  """The original's reward `.ckpt`: the backbone's keys plus `linear.*` and `mean_offset`."""
  head = sharding.to_host(reward.head)
  loading.export_lightning(reward.backbone, out_path, extra_state={
      "linear.weight": np.asarray(head["kernel"], np.float32)[None, :],
      "linear.bias": np.asarray(head["bias"], np.float32).reshape(1),
      OFFSET_KEY: np.asarray(reward.mean_offset, np.float32)})


# -- scoring ---------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("model", "exclude_id"))
def _score_batch(model, params, ctx, ctx_mask, resp, resp_mask, *, exclude_id):
  return response_rewards(model, params, ctx, ctx_mask, resp, resp_mask, exclude_id=exclude_id)


class RewardScorer:
  """`scorer(contexts, responses) -> rewards` (numpy, `mean_offset` subtracted): batched,
  length-sorted, jitted per length bucket, sharded over the mesh's batch axes. `contexts` are
  lists of turns (oldest first); each is encoded in the reward model's own input format."""

  def __init__(self, reward: RewardModel, batch_size: int = 32, mesh=None):
    self.reward = reward
    self.mesh = mesh if mesh is not None else sharding.make_mesh()
    shards = sharding.batch_shards(self.mesh)
    rows = -(-batch_size // shards) * shards  # every device gets whole rows
    self.batcher = make_batcher(reward.backbone.fmt, rows)
    model = reward.backbone.model
    self.params = {
        "backbone": sharding.shard_tree(reward.backbone.params,
                                        sharding.param_shardings(model, self.mesh)),
        "head": sharding.replicate(reward.head, self.mesh)}

  def __call__(self, contexts: Sequence[Sequence[str]], responses: Sequence[str]) -> np.ndarray:
    if len(contexts) != len(responses):
      raise ValueError(f"{len(contexts)} contexts but {len(responses)} responses")
    if not len(contexts):
      return np.zeros(0, np.float32)
    fmt = self.reward.backbone.fmt
    targets = fmt.encode_targets(list(responses))
    ctx = fmt.fit_contexts(fmt.encode_contexts([list(c) for c in contexts]), targets)
    table = {"context_ids": [c.ids for c in ctx], "target_ids": [t.ids for t in targets]}
    out = np.zeros(len(responses), np.float32)
    data = sharding.batch_sharding(self.mesh, 2)
    model = self.reward.backbone.model
    for idx in self.batcher.batch_indices(_Table(table)):
      batch = self.batcher.make_batch([table["context_ids"][i] for i in idx],
                                      [table["target_ids"][i] for i in idx], idx.tolist())
      arrays = sharding.from_host([batch.context_ids_BxC, batch.context_mask_BxC,
                                   batch.target_ids_BxT, batch.target_mask_BxT], data)
      values = sharding.to_host(_score_batch(model, self.params, *arrays,
                                                      exclude_id=self.reward.pool_exclude_id))
      real = batch.example_index_B >= 0
      out[batch.example_index_B[real]] = values[real]
    return out - np.float32(self.reward.mean_offset)


class _Table(dict):
  """The two columns `Batcher.batch_indices` reads, with the row count as its length."""

  def __len__(self):
    return len(self["context_ids"])


def load_scorer(source: str, batch_size: int = 32, trust_pickle: bool = False,
                mesh=None) -> RewardScorer:
  check_source(source)
  return RewardScorer(load(source, trust_pickle=trust_pickle), batch_size, mesh)
