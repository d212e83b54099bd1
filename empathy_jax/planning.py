"""Memory and layout plans: the real SFT, reward, PPO, DPO and GRPO programs compiled for a mesh of any
size, on abstract shapes (no weight is allocated), with what each device would hold.

`launch/plan.py` runs this on fake CPU devices (`--devices 64`) to plan a pod from a laptop:
XLA partitions the programs exactly as it would for the pod (the same SPMD partitioner), and
its memory analysis gives each device's arguments, outputs and temporaries. Activation memory
depends on the backend's fusion and scheduling, so a TPU's or GPU's temporaries differ from the
CPU's; parameter and optimizer bytes are exact.

The hub models' architectures are written out below (their published config.json fields), so a
plan needs neither the hub nor the weights.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import time
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from empathy_jax import registry, sharding
from empathy_jax.families import config_from_hf
from empathy_jax.generation.config import resolve
from empathy_jax.models import heads
from empathy_jax.models.api import DialogueModel
from empathy_jax.models.configs import RuntimeOptions
from empathy_jax.models.loaded import format_for
from empathy_jax.settings import setting
from empathy_jax.training import dpo, grpo, reward_trainer, sft
from empathy_jax.training.optimizer import OptimizerConfig, make_optimizer
from empathy_jax.training.ppo import trainer as ppo_trainer
from empathy_jax.training.state import abstract_state, state_shardings

_T5_V11 = dict(model_type="t5", d_kv=64, feed_forward_proj="gated-gelu",
               tie_word_embeddings=False, relative_attention_num_buckets=32,
               relative_attention_max_distance=128, dropout_rate=0.1, layer_norm_epsilon=1e-6,
               vocab_size=32128, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
_GPT2 = dict(model_type="gpt2", n_positions=1024, activation_function="gelu_new",
             resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, layer_norm_epsilon=1e-5,
             vocab_size=50257, bos_token_id=50256, eos_token_id=50256)
# The published config.json fields of the registry's hub checkpoints (architecture only).
PUBLISHED_ARCHITECTURES: dict[str, dict[str, Any]] = {
    "GODEL_SMALL": dict(_T5_V11, d_model=768, d_ff=2048, num_layers=12, num_decoder_layers=12,
                        num_heads=12),
    "GODEL_LARGE": dict(_T5_V11, d_model=1024, d_ff=2816, num_layers=24,
                        num_decoder_layers=24, num_heads=16),
    "DialoGPT_SMALL": dict(_GPT2, n_embd=768, n_layer=12, n_head=12),
    "DialoGPT_MEDIUM": dict(_GPT2, n_embd=1024, n_layer=24, n_head=16),
    "DialoGPT_LARGE": dict(_GPT2, n_embd=1280, n_layer=36, n_head=20),
    "BlenderBot": dict(model_type="blenderbot", d_model=1280, encoder_layers=2,
                       decoder_layers=12, encoder_attention_heads=32,
                       decoder_attention_heads=32, encoder_ffn_dim=5120, decoder_ffn_dim=5120,
                       max_position_embeddings=128, activation_function="gelu", dropout=0.1,
                       attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True,
                       vocab_size=8008, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                       decoder_start_token_id=1, forced_eos_token_id=2),
}
STEPS = ("sft", "reward", "ppo_rollout", "ppo_update", "dpo", "grpo_rollout", "grpo_update")
DEFAULT_STEPS = STEPS[:4]  # the original's loop
COLLECTIVES = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all", "collective-permute")


def architecture(model: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
  """transformers config fields of a registry model (published ones for hub models), with
  `overrides` (e.g. fewer layers for a quick plan)."""
  if model in PUBLISHED_ARCHITECTURES:
    hf = dict(PUBLISHED_ARCHITECTURES[model])
  else:
    spec = registry.get_model_spec(model)
    hf = dict(spec.config or {})
    if "vocab_size" not in hf:  # as `loading.from_spec`: the tokenizer's vocabulary
      hf["vocab_size"] = format_for(spec.family, spec.tokenizer, spec.max_length).vocab_size
  return {**hf, **dict(overrides or {})}


@dataclasses.dataclass(frozen=True)
class PlanConfig:
  """What to plan. Lengths in tokens: contexts, SFT targets and reward responses
  (`target_length`), PPO responses (`max_new_tokens`); `num_responses` per reward context."""

  model: str
  mesh: sharding.MeshConfig = sharding.MeshConfig()
  steps: tuple[str, ...] = DEFAULT_STEPS
  batch_size: int = setting(8, "Global batch size (PPO, GRPO: rollout contexts; DPO: pairs).")
  context_length: int = 256
  target_length: int = setting(64, "SFT target / reward response tokens.")
  max_new_tokens: int = setting(100, "PPO response tokens (the original's default).")
  num_responses: int = setting(4, "Reward model: responses per context.")
  group_size: int = setting(4, "GRPO: responses sampled per context.")
  dtype: str = setting("float32", "Compute dtype (weights and the optimizer stay float32).",
                       ("float32", "bfloat16"))
  reference_dtype: str = setting("float32", "PPO's frozen reference.", ("float32", "bfloat16"))
  remat: bool = setting(False, "Rematerialise blocks in the backward pass.")
  scan_layers: bool = setting(False, "Scan over layers.")
  device_memory_gb: float = setting(16.0, "Accelerator memory per device, GiB.")
  overrides: tuple[tuple[str, Any], ...] = ()

  def __post_init__(self):
    unknown = set(self.steps) - set(STEPS)
    if unknown:
      raise ValueError(f"unknown steps {sorted(unknown)}; known: {', '.join(STEPS)}")


@dataclasses.dataclass(frozen=True)
class StepPlan:
  """Per-device bytes of one compiled program. `resident`: what lives on the device across
  programs but is not this program's argument (the PPO reference and reward model during the
  update, say); `peak` = resident + arguments + outputs - donated + temporaries."""

  step: str
  params: int
  optimizer: int
  arguments: int
  outputs: int
  aliased: int
  temporaries: int
  resident: int
  collectives: dict[str, int]
  compile_seconds: float

  @property
  def peak(self) -> int:
    return self.resident + self.arguments + self.outputs - self.aliased + self.temporaries

  def fits(self, device_memory_gb: float) -> bool:
    return self.peak <= device_memory_gb * 2**30


def per_device_bytes(shapes, shardings) -> int:
  """Bytes of a tree's largest shard on one device (abstract shapes, by their shardings)."""
  def one(x, s):
    return int(np.prod(s.shard_shape(tuple(x.shape)))) * jnp.dtype(x.dtype).itemsize
  return sum(jax.tree.leaves(jax.tree.map(one, shapes, shardings)))


def count_collectives(hlo_text: str) -> dict[str, int]:
  """Collective ops in a compiled program's text (each op once, however often a loop runs it)."""
  return {name: len(re.findall(rf"\b{name}(?:-start)?\(", hlo_text)) for name in COLLECTIVES}


def _abstract(shapes, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      shapes, shardings)


def _compiled(fn, *args):
  start = time.perf_counter()
  compiled = fn.lower(*args).compile()
  return compiled, time.perf_counter() - start


def _step_plan(step, compiled, seconds, params, optimizer, resident) -> StepPlan:
  mem = compiled.memory_analysis()
  return StepPlan(step, params, optimizer, int(mem.argument_size_in_bytes),
                  int(mem.output_size_in_bytes), int(mem.alias_size_in_bytes),
                  int(mem.temp_size_in_bytes), resident,
                  count_collectives(compiled.as_text()), seconds)


def _batch(mesh, floats=("factor",), **shapes) -> dict:
  """Abstract batch arrays split over the batch axes: float32 for names starting with one of
  `floats`, int32 otherwise."""
  return {k: jax.ShapeDtypeStruct(shape, jnp.float32 if k.startswith(tuple(floats))
                                  else jnp.int32,
                                  sharding=sharding.batch_sharding(mesh, len(shape)))
          for k, shape in shapes.items()}


class _Planner:
  def __init__(self, cfg: PlanConfig, mesh):
    self.cfg, self.mesh = cfg, mesh
    opts = RuntimeOptions(dtype=cfg.dtype, remat=cfg.remat, scan_layers=cfg.scan_layers)
    self.model = DialogueModel(config_from_hf(architecture(cfg.model, dict(cfg.overrides)),
                                              opts))
    self.tx = make_optimizer(OptimizerConfig(), 1, 1)[0]
    self.replicated = sharding.replicated(mesh)

  def _train_state(self, boxed_params):
    abstract = abstract_state(boxed_params, self.tx)
    return nn.unbox(abstract), state_shardings(abstract, self.mesh)

  def _sizes(self, shapes, shardings):
    return (per_device_bytes(shapes.params, shardings.params),
            per_device_bytes(shapes.opt_state, shardings.opt_state))

  def sft(self) -> StepPlan:
    b, c, t = self.cfg.batch_size, self.cfg.context_length, self.cfg.target_length
    shapes, shardings = self._train_state(self.model.abstract_params())
    batch = _batch(self.mesh, context_ids_BxC=(b, c), context_mask_BxC=(b, c),
                   target_ids_BxT=(b, t), target_mask_BxT=(b, t), example_index_B=(b,))
    fn = sft.programs(self.model, self.tx, shardings, self.mesh).step
    compiled, seconds = _compiled(fn, _abstract(shapes, shardings), batch)
    return _step_plan("sft", compiled, seconds, *self._sizes(shapes, shardings), 0)

  def reward(self) -> StepPlan:
    b, c, t, r = (self.cfg.batch_size, self.cfg.context_length, self.cfg.target_length,
                  self.cfg.num_responses)
    p = r * (r - 1) // 2
    head = heads.abstract(heads.init_scalar_head(jax.random.PRNGKey(0), self.model.hidden_size))
    shapes, shardings = self._train_state({"backbone": self.model.abstract_params(),
                                           "head": head})
    batch = _batch(self.mesh, context_ids_BxC=(b, c), context_mask_BxC=(b, c),
                   response_ids_BxRxT=(b, r, t), response_mask_BxRxT=(b, r, t),
                   pair_a_BxP=(b, p), pair_b_BxP=(b, p), factor_BxP=(b, p),
                   pair_mask_BxP=(b, p), context_index_B=(b,))
    fn = reward_trainer.programs(self.model, self.tx, shardings, self.mesh, exclude_id=None,
                                 dropout=0.1).step
    compiled, seconds = _compiled(fn, _abstract(shapes, shardings), batch)
    return _step_plan("reward", compiled, seconds, *self._sizes(shapes, shardings), 0)

  @functools.cached_property
  def _ppo(self) -> "_PPOParts":
    """Shared by both PPO plans (built once when both are planned)."""
    cfg = self.cfg
    ppo = ppo_trainer.default_ppo_config(resolve({}, {}, self.model.cfg),
                                         max_new_tokens=cfg.max_new_tokens)
    shapes, shardings = ppo_trainer.state_layout(self.model, self.tx, self.mesh, False)
    policy_shardings = shardings.params["policy"]
    ref_shapes = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, jnp.dtype(cfg.reference_dtype)),
        shapes.params["policy"])
    b, c = cfg.batch_size, cfg.context_length
    batch = _batch(self.mesh, ctx=(b, c), cmask=(b, c))
    sample, finish = ppo_trainer.update_programs(self.model, self.tx, ppo, self.mesh, shardings)
    params, optimizer = self._sizes(shapes, shardings)
    return _PPOParts(
        ppo=ppo, state=_abstract(shapes, shardings), shardings=shardings,
        reference=_abstract(ref_shapes, policy_shardings),
        reference_bytes=per_device_bytes(ref_shapes, policy_shardings),
        # The reward model: a backbone of the policy's architecture and its head, as placed.
        reward_bytes=per_device_bytes(shapes.params["critic"], shardings.params["critic"]),
        rollout_args=(batch["ctx"], batch["cmask"],
                      jax.ShapeDtypeStruct((b,), jnp.int32, sharding=self.replicated)),
        sample=sample, finish=finish, params_bytes=params, optimizer_bytes=optimizer)

  def ppo_rollout(self) -> StepPlan:
    p = self._ppo
    compiled, seconds = _compiled(p.sample, p.state, p.reference, *p.rollout_args)
    # The optimizer state is no argument of the rollout (unused, pruned) but stays resident.
    return _step_plan("ppo_rollout", compiled, seconds, p.params_bytes, p.optimizer_bytes,
                      p.optimizer_bytes + p.reward_bytes)

  def ppo_update(self) -> StepPlan:
    p = self._ppo
    rollout = jax.eval_shape(p.sample, p.state, p.reference, *p.rollout_args)
    rollout = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
        x.shape, x.dtype, sharding=sharding.batch_sharding(self.mesh, len(x.shape))), rollout)
    scores = jax.ShapeDtypeStruct((self.cfg.batch_size,), jnp.float32, sharding=self.replicated)
    compiled, seconds = _compiled(p.finish, p.state, rollout, scores)
    return _step_plan("ppo_update", compiled, seconds, p.params_bytes, p.optimizer_bytes,
                      p.reference_bytes + p.reward_bytes)


  def dpo(self) -> StepPlan:
    """A DPO step: the policy only (the reference's log-probs come with the batch)."""
    b, c, t = self.cfg.batch_size, self.cfg.context_length, self.cfg.target_length
    shapes, shardings = self._train_state(self.model.abstract_params())
    batch = _batch(self.mesh, ("weight", "tie", "real", "ref"),
                   context_ids_BxC=(b, c), context_mask_BxC=(b, c), chosen_ids_BxT=(b, t),
                   chosen_mask_BxT=(b, t), rejected_ids_BxT=(b, t), rejected_mask_BxT=(b, t),
                   weight_B=(b,), tie_B=(b,), real_B=(b,), ref_chosen_B=(b,),
                   ref_rejected_B=(b,))
    run = dpo.DPOConfig(dataset_dir=".", output_dir=".", model=self.cfg.model)
    fn = dpo.programs(self.model, self.tx, shardings, self.mesh, run).step
    compiled, seconds = _compiled(fn, _abstract(shapes, shardings), batch)
    return _step_plan("dpo", compiled, seconds, *self._sizes(shapes, shardings), 0)

  @functools.cached_property
  def _grpo(self) -> dict:
    """Shared by both GRPO plans: the config, the abstract state, the reference, the rollout's
    arguments and program, and the resident bytes (reference, reward model)."""
    cfg = self.cfg
    run = grpo.GRPOConfig(dataset_dir=".", output_dir=".", reward_model_dir=".",
                          model=cfg.model, batch_size=cfg.batch_size,
                          group_size=cfg.group_size, max_new_tokens=cfg.max_new_tokens)
    shapes, shardings = self._train_state({"policy": self.model.abstract_params()})
    ref_shapes = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, jnp.dtype(cfg.reference_dtype)),
        shapes.params["policy"])
    b, c = cfg.batch_size, cfg.context_length
    batch = _batch(self.mesh, ctx=(b, c), cmask=(b, c))
    gen = dataclasses.replace(resolve({}, {}, self.model.cfg), max_new_tokens=cfg.max_new_tokens,
                              sample=True, temperature=1.0, top_k=0, top_p=1.0, beam_width=1,
                              min_length=0, no_repeat_ngram_size=0,
                              encoder_no_repeat_ngram_size=0, forced_eos_token_id=None)
    head = heads.abstract(heads.init_scalar_head(jax.random.PRNGKey(0), self.model.hidden_size))
    # The reward model: a backbone of the policy's architecture and its head, as placed.
    reward_shapes, reward_shardings = self._train_state(
        {"backbone": self.model.abstract_params(), "head": head})
    params, optimizer = self._sizes(shapes, shardings)
    sample, update = grpo.programs(self.model, self.tx, shardings, self.mesh, run, gen)
    return dict(run=run, state=_abstract(shapes, shardings), shardings=shardings,
                reference=_abstract(ref_shapes, shardings.params["policy"]),
                reference_bytes=per_device_bytes(ref_shapes, shardings.params["policy"]),
                reward_bytes=per_device_bytes(reward_shapes.params, reward_shardings.params),
                args=(batch["ctx"], batch["cmask"],
                      jax.ShapeDtypeStruct((b,), jnp.int32, sharding=self.replicated),
                      jax.ShapeDtypeStruct((2,), jnp.uint32, sharding=self.replicated)),
                sample=sample, update=update, params_bytes=params, optimizer_bytes=optimizer)

  def grpo_rollout(self) -> StepPlan:
    p = self._grpo
    params = p["state"].params
    compiled, seconds = _compiled(p["sample"], params, p["reference"], *p["args"])
    return _step_plan("grpo_rollout", compiled, seconds, p["params_bytes"],
                      p["optimizer_bytes"], p["optimizer_bytes"] + p["reward_bytes"])

  def grpo_update(self) -> StepPlan:
    p = self._grpo
    gen = jax.eval_shape(p["sample"], p["state"].params, p["reference"], *p["args"])
    gen = jax.tree.map(lambda x: jax.ShapeDtypeStruct(
        x.shape, x.dtype, sharding=sharding.batch_sharding(self.mesh, len(x.shape))), gen)
    n = self.cfg.batch_size * self.cfg.group_size
    scores = jax.ShapeDtypeStruct((n,), jnp.float32, sharding=self.replicated)
    real = jax.ShapeDtypeStruct((self.cfg.batch_size,), jnp.float32, sharding=self.replicated)
    compiled, seconds = _compiled(p["update"], p["state"], gen, scores, real)
    return _step_plan("grpo_update", compiled, seconds, p["params_bytes"], p["optimizer_bytes"],
                      p["reference_bytes"] + p["reward_bytes"])


@dataclasses.dataclass(frozen=True)
class _PPOParts:
  """What both PPO plans start from: the abstract state and reference, their bytes, the
  rollout's other arguments and its program."""

  ppo: Any
  state: Any
  shardings: Any
  reference: Any
  reference_bytes: int
  reward_bytes: int
  rollout_args: tuple
  sample: Any
  finish: Any
  params_bytes: int
  optimizer_bytes: int


def plan(cfg: PlanConfig, devices=None) -> list[StepPlan]:
  """Compiles each of `cfg.steps` on a mesh over `devices` (all by default) and reports them."""
  mesh = sharding.make_mesh(cfg.mesh, devices)
  planner = _Planner(cfg, mesh)
  return [getattr(planner, step)() for step in cfg.steps]


def parameter_count(cfg: PlanConfig) -> int:
  model = DialogueModel(config_from_hf(architecture(cfg.model, dict(cfg.overrides))))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nn.unbox(model.abstract_params())))


def gib(n: int) -> str:
  return f"{n / 2**30:.2f}"


def table(cfg: PlanConfig, plans: list[StepPlan], devices: int) -> str:
  """The plans as a text table (GiB per device) for a mesh over `devices`."""
  data, fsdp, tensor = cfg.mesh.shape(devices)
  head = (f"{cfg.model}: mesh data={data} fsdp={fsdp} tensor={tensor}, batch {cfg.batch_size}, context {cfg.context_length}, "
          f"target {cfg.target_length}, new tokens {cfg.max_new_tokens}, {cfg.dtype}"
          f"{', remat' if cfg.remat else ''}{', scan_layers' if cfg.scan_layers else ''}; "
          f"GiB per device, fits {cfg.device_memory_gb:g} GiB?")
  rows = [f"{'step':<12}{'params':>8}{'optim':>8}{'args':>8}{'temps':>8}{'other':>8}"
          f"{'peak':>8}  fits  collectives (ops)  compile s"]
  for p in plans:
    coll = " ".join(f"{k}:{v}" for k, v in p.collectives.items() if v) or "none"
    rows.append(f"{p.step:<12}{gib(p.params):>8}{gib(p.optimizer):>8}{gib(p.arguments):>8}"
                f"{gib(p.temporaries):>8}{gib(p.resident):>8}{gib(p.peak):>8}  "
                f"{'yes' if p.fits(cfg.device_memory_gb) else 'NO':<4}  {coll}  "
                f"{p.compile_seconds:.1f}")
  return "\n".join([head, *rows])
