#!/usr/bin/env python
"""Memory and layout plan of the SFT, reward and PPO steps for a mesh you may not have.

  python launch/plan.py --model GODEL_LARGE --devices 64 --mesh_data 8 --mesh_fsdp 8 \\
      --batch_size 64 --dtype bfloat16 --scan_layers --remat --device_memory_gb 16
  python launch/plan.py --config configs/sft_godel_ed.py --devices 8 --mesh_fsdp 8 --steps sft

Compiles the real train programs on abstract shapes (no weights are made) for a mesh of
`--devices` fake CPU devices, and prints per device: parameter and optimizer bytes, the
program's arguments and temporaries (XLA's memory analysis), what else stays resident (PPO's
reference and reward model), the peak, whether it fits `--device_memory_gb` (16 for a TPU
v5e, 32 for a v4, 80 for an A100/H100), and the collective ops in each program. Hub models'
architectures are built in; no download. A final JSON line holds every figure.
"""

import os
import sys


def _simulated_devices(argv) -> None:
  """--devices N must reach XLA before jax is imported: N fake CPU devices."""
  for i, arg in enumerate(argv):
    if arg.startswith("--devices"):
      n = arg.split("=", 1)[1] if "=" in arg else argv[i + 1]
      os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                 f" --xla_force_host_platform_device_count={n}")
      os.environ["JAX_PLATFORMS"] = "cpu"


_simulated_devices(sys.argv)

import dataclasses  # noqa: E402
import json  # noqa: E402

import jax  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from empathy_jax import launch_flags, planning, registry, settings  # noqa: E402

F = flags
F.DEFINE_integer("devices", None, "Simulate this many devices (fake CPU devices). Without it, "
                 "the machine's own devices.")
launch_flags.define_model_flags()
_CONFIG = launch_flags.define_config_flag()
_MESH = launch_flags.define_mesh_flags()
F.DEFINE_list("steps", list(planning.DEFAULT_STEPS), f"Programs to plan: "
              f"{', '.join(planning.STEPS)}.")
F.DEFINE_integer("context_length", None, "Context tokens (the padded bucket; default 256, or "
                 "the model's longest input when shorter: BlenderBot's 128).")
settings.define_flags(planning.PlanConfig)  # the plan's settings, from its fields
F.DEFINE_multi_string("override", [], "Architecture field=value (e.g. num_layers=2), for a "
                      "reduced model.")
F.DEFINE_string("output_json", None, "Also write the figures here.")
launch_flags.list_in_help()

def _override(text: str):
  key, _, raw = text.partition("=")
  if not key or not raw:
    launch_flags.fail(f"--override wants field=value, got {text!r}")
  try:
    return key, json.loads(raw)
  except json.JSONDecodeError:
    return key, raw


def main(argv):
  del argv
  logging.set_verbosity(logging.ERROR)
  # An experiment config brings its model and run settings; its data/run fields do not matter.
  model = launch_flags.model_source()[0]
  if not model:
    launch_flags.fail("give --model (a registry name, e.g. GODEL_LARGE) or a --config with one")
  if model not in registry.all_models():
    launch_flags.fail(f"unknown model {model!r}; known: {', '.join(sorted(registry.all_models()))}")
  try:
    cfg = settings.from_flags(
        planning.PlanConfig, launch_flags.value, model=model, mesh=_MESH(),
        steps=tuple(F.FLAGS.steps),
        context_length=F.FLAGS.context_length or min(256, registry.get_model_spec(model)
                                                     .max_length),
        overrides=tuple(_override(o) for o in F.FLAGS.override))
    planning.architecture(cfg.model)
  except (ValueError, KeyError) as e:
    launch_flags.fail(str(e))
  try:
    shape = cfg.mesh.shape(jax.device_count())
  except ValueError as e:
    launch_flags.fail(f"{e} (simulate more with --devices N)")
  shards = shape[0] * shape[1]  # the batch is split over data x fsdp
  if cfg.batch_size % shards:
    launch_flags.fail(f"--batch_size {cfg.batch_size} cannot be split over the mesh's "
                      f"{shards} batch shards (data {shape[0]} x fsdp {shape[1]}): give a "
                      f"multiple of {shards}")
  parameters = planning.parameter_count(cfg)
  print(f"{parameters / 1e6:.0f}M parameters, {jax.device_count()} "
        f"{jax.devices()[0].platform} devices", flush=True)
  plans = planning.plan(cfg)
  print(planning.table(cfg, plans, jax.device_count()))
  result = {"config": {**dataclasses.asdict(cfg), "mesh": dataclasses.asdict(cfg.mesh)},
            "devices": jax.device_count(), "parameters": parameters,
            "steps": [{**dataclasses.asdict(p), "peak": p.peak,
                       "fits": p.fits(cfg.device_memory_gb)} for p in plans]}
  if F.FLAGS.output_json:
    with open(F.FLAGS.output_json, "w") as f:
      json.dump(result, f, indent=1)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main, flags_parser=launch_flags.original_flag_parser)
