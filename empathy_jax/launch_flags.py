"""absl flags that several launchers share (the original's names), each group defined once, and
the experiment-config flag (`--config configs/X.py[:variant]`).

A launcher calls a `define_*` function at import time and, in `main`, the function it returns
to build the frozen config from the parsed values. Precedence, lowest first: the flag's default,
the experiment config's field, the flag given on the command line; `--config.FIELD=value`
overrides a field of the config itself.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Callable

from absl import flags, logging
from ml_collections import config_flags

from empathy_jax import compilation, settings
from empathy_jax.errors import CheckpointError, DatasetError, DivergedError, fail, parse_flags  # noqa: F401
from empathy_jax.evaluation.suite import ScoreConfig
from empathy_jax.generation import config as generation_config
from empathy_jax.sharding import MeshConfig

FLAGS = flags.FLAGS


def define_mesh_flags() -> Callable[[], MeshConfig]:
  data = flags.DEFINE_integer("mesh_data", -1, "Mesh data axis size (-1: remaining devices).")
  fsdp = flags.DEFINE_integer("mesh_fsdp", 1, "Mesh fsdp axis size.")
  tensor = flags.DEFINE_integer("mesh_tensor", 1, "Mesh tensor axis size.")
  return lambda: MeshConfig(value("mesh_data", data), value("mesh_fsdp", fsdp),
                            value("mesh_tensor", tensor))


def define_metric_flags() -> Callable[[int], ScoreConfig]:
  """The metric suite's flags, from `ScoreConfig`'s settings (and --trust_pickle); the returned
  builder takes the launcher's --batch_size."""
  settings.define_flags(ScoreConfig)
  define_trust_pickle_flag()
  return lambda batch_size: settings.from_flags(ScoreConfig, read=value, batch_size=batch_size,
                                                trust_pickle=value("trust_pickle"))


# The flags `define_metric_flags` defines: what an experiment config may set for them.
METRIC_FLAGS = tuple(f.name for f in settings.flag_fields(ScoreConfig)) + ("trust_pickle",)


GENERATION_FLAGS = generation_config.USER_FLAGS


def define_generation_flags() -> Callable[[], dict]:
  """test.py's generation flags (HF's names in the help); the returned function gives those
  the user set (command line or experiment config), None for the others: left out, they take
  the checkpoint's generation_config."""
  flags.DEFINE_integer("beam_width", None, "Beams (HF num_beams).")
  flags.DEFINE_bool("sample", None, "Sample instead of greedy/beam search.")
  flags.DEFINE_float("temperature", None, "Sampling temperature.")
  flags.DEFINE_float("top_p", None, "Nucleus sampling mass.")
  flags.DEFINE_integer("top_k", None, "Top-k sampling.")
  flags.DEFINE_integer("max_new_tokens", None, "New tokens (default: checkpoint/HF max_length).")
  flags.DEFINE_float("length_alpha", None, "Beam length penalty (HF length_penalty).")
  return lambda: {k: value(k) for k in GENERATION_FLAGS}


def define_distributed_flags() -> None:
  """--distributed and the three arguments of jax.distributed.initialize()."""
  flags.DEFINE_bool("distributed", False, "Multi-host: call jax.distributed.initialize() "
                    "(arguments auto-detected on TPU pods/SLURM, or the three flags below).")
  flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (with "
                      "--distributed).")
  flags.DEFINE_integer("num_processes", None, "Number of processes (with --distributed).")
  flags.DEFINE_integer("process_id", None, "This process's index (with --distributed).")


def define_overwrite_flag():
  if "overwrite" in FLAGS:
    return FLAGS["overwrite"]
  return flags.DEFINE_bool(
      "overwrite", False, "Replace what another run wrote in the output folder (by default such "
      "a folder is refused before any work).")


def define_trust_pickle_flag():
  if "trust_pickle" in FLAGS:
    return FLAGS["trust_pickle"]
  return flags.DEFINE_bool(
      "trust_pickle", False, "Unpickle .ckpt / training_args.bin files with full pickle. "
      "RISK: a pickle can run any code on this machine; only for files whose author you trust "
      "(by default an allow-list loads the original's files without running anything).")


def define_compilation_cache_flag() -> Callable[[], None]:
  """`--compilation_cache_dir`; the returned function turns the cache on (call it first)."""
  holder = flags.DEFINE_string(
      "compilation_cache_dir", compilation.default_cache_dir(),
      "JAX's persistent compilation cache: a second run of the same job compiles nothing. "
      "'' turns it off.")
  return lambda: compilation.enable_cache(holder.value)


def define_config_flag():
  """`--config configs/X.py[:variant]`: an ml_collections experiment config."""
  return config_flags.DEFINE_config_file(
      "config", None, "Experiment config (configs/*.py, optionally :tiny for the CPU variant). "
      "Its fields set the flags of the same name; flags given on the command line win; "
      "--config.FIELD=value overrides a field.", lock_config=True)


def value(name: str, holder=None):
  """A flag's value after the experiment config: the command line wins, then the config's
  field of the same name, then the flag's default."""
  holder = holder if holder is not None else FLAGS[name]
  present = FLAGS[name].present if name in FLAGS else False
  config = FLAGS["config"].value if "config" in FLAGS else None
  if not present and config is not None and name in config:
    return config[name]
  return holder.value


def model_source() -> tuple[str | None, str | None]:
  """(--model, --pretrained_model_dir) after the config: either one given on the command line
  replaces the config's choice of model."""
  given = [n for n in ("model", "pretrained_model_dir") if FLAGS[n].present]
  if given:
    return FLAGS["model"].value, FLAGS["pretrained_model_dir"].value
  return value("model"), value("pretrained_model_dir")


def define_model_flags(role: str = "") -> None:
  """--model / --pretrained_model_dir: the two ways to name a dialogue model; `role` says what
  the launcher does with it (e.g. "the policy to start from")."""
  role = f" ({role})" if role else ""
  flags.DEFINE_string("model", None, f"Registry model name, e.g. GODEL_TINY{role}.")
  flags.DEFINE_string("pretrained_model_dir", None, f"Our run/model folder, a Hugging Face "
                      f"directory or hub name, or an original Lightning .ckpt / run{role}.")


def required_model_source() -> str:
  """The one model a tool launcher runs (--model or --pretrained_model_dir), or exit."""
  model, pretrained = model_source()
  if bool(model) == bool(pretrained):
    fail("give exactly one of --model and --pretrained_model_dir")
  return model or pretrained


def check_config_fields(known: set[str]) -> None:
  """Exits with a clear message when the experiment config has a field no flag takes."""
  config = FLAGS["config"].value if "config" in FLAGS else None
  if config is None:
    return
  unknown = sorted(set(config.keys()) - known)
  if unknown:
    fail(f"--config {FLAGS['config'].config_filename}: unknown field(s) {', '.join(unknown)}; "
         f"known: {', '.join(sorted(known))}")


# The original's argparse spellings that absl writes otherwise.
ORIGINAL_SPELLINGS = {"--no_sample": "--nosample"}


def original_flag_parser(argv: list[str]):
  """absl's parser, after the original's spellings are mapped to absl's (`--no_sample`); an
  unknown or malformed flag ends the run with `error:` as the last line (no usage dump)."""
  return parse_flags([ORIGINAL_SPELLINGS.get(a, a) for a in argv])


def quiet_libraries() -> None:
  """Library INFO logs (backend probing, orbax's saves) only when --verbosity asks for them."""
  if not FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def train_config(config_cls, mesh: Callable[[], MeshConfig]):
  """A train launcher's frozen config from its flags and the experiment config (fields named
  as flags; `mesh` from the mesh flags); a bad value ends the run with `error:` (`fail`)."""
  fields = [f.name for f in dataclasses.fields(config_cls) if f.name != "mesh"]
  check_config_fields(set(fields) | {"mesh_data", "mesh_fsdp", "mesh_tensor"})
  starts_from_a_model = "model" in FLAGS  # else the trainer builds its own (classifiers)
  values = {name: value(name) for name in fields
            if starts_from_a_model or name not in ("model", "pretrained_model_dir")}
  if starts_from_a_model:
    values["model"], values["pretrained_model_dir"] = model_source()
  if not values["dataset_dir"] or not values["output_dir"]:
    fail("--dataset_dir and --output_dir are required (or a --config with them)")
  try:
    return config_cls(**values, mesh=mesh())
  except ValueError as e:
    fail(str(e))


# What a train run raises on bad input (its message is the error line) or on divergence.
TRAIN_ERRORS = (DatasetError, CheckpointError, DivergedError, ValueError)


def run_trainer(config_cls, mesh: Callable[[], MeshConfig], cache: Callable[[], None],
                train_fn, errors: tuple = (), summarize=None, one_line: bool = False) -> None:
  """A train launcher's `main`: the compilation cache on, the config from the flags, the run,
  its summary as JSON on stdout (`summarize` makes it printable; `one_line`: as the last line,
  unindented) and the compilation figures on stderr; bad input ends the process with
  `error: ...` (`fail`)."""
  cache()
  cfg = train_config(config_cls, mesh)
  logging.set_verbosity(logging.WARNING)  # orbax is chatty at INFO; progress has its own bar
  try:
    summary = train_fn(cfg)  # every input is checked before heavy work
  except TRAIN_ERRORS + tuple(errors) as e:
    fail(str(e))
  print(compilation.summary(), file=sys.stderr, flush=True)
  print(json.dumps(summarize(summary) if summarize else summary,
                   indent=None if one_line else 2), flush=True)


def trainer_main(config_cls, train_fn, role: str | None, *, step: str = "steps",
                 dropout_help: str = "Override the checkpoint's dropout.", errors: tuple = (),
                 summarize=None, one_line: bool = False):
  """A train launcher in one call: defines every flag it takes (--model/--pretrained_model_dir
  unless `role` is None, `role` saying what the model is to the run; the config's settings;
  the shared run flags with the config's own cadence defaults), lists them in the launcher's
  --help, and returns its `main` (`run_trainer` with these arguments)."""
  if role is not None:
    define_model_flags(role)
  settings.define_flags(config_cls)
  defaults = {f.name: f.default for f in dataclasses.fields(config_cls)}
  mesh, cache = define_run_flags(defaults["log_interval"], defaults["checkpoint_interval"],
                                 dropout_help, step)
  list_in_help(sys._getframe(1).f_globals["__name__"])  # pylint: disable=protected-access

  def main(argv):
    del argv
    run_trainer(config_cls, mesh, cache, train_fn, errors, summarize, one_line)

  return main


def list_in_help(module_name: str | None = None) -> None:
  """Makes the shared flags (those this module and `settings` define) key flags of the launcher
  module (`module_name`, by default the caller's), so its --help lists them. absl's
  adopt_module_key_flags does this for the module that calls it, hence the name here."""
  if module_name is None:
    module_name = sys._getframe(1).f_globals["__name__"]  # pylint: disable=protected-access
  if module_name == "__main__":
    module_name = sys.argv[0]  # absl's name for the main module
  for source in (__name__, settings.__name__):
    for flag in FLAGS.get_key_flags_for_module(source):
      FLAGS.register_key_flag_for_module(module_name, flag)


def define_run_flags(log_interval: int, checkpoint_interval: int,
                     dropout_help: str = "Override the checkpoint's dropout.",
                     step: str = "steps"):
  """The flags every train launcher shares (runtime, mesh, cadence, multi-host, pickle trust,
  compilation cache, experiment config), with this launcher's cadence defaults. Returns (the
  mesh builder, the function that turns the compilation cache on)."""
  flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")
  flags.DEFINE_float("dropout_rate", None, dropout_help)
  flags.DEFINE_bool("remat", False, "Rematerialise blocks (saves memory).")
  flags.DEFINE_bool("scan_layers", False, "Scan over layers (large models).")
  mesh = define_mesh_flags()
  flags.DEFINE_integer("log_interval", log_interval, f"{step.capitalize()} between train-metric "
                       f"logs.")
  flags.DEFINE_integer("checkpoint_interval", checkpoint_interval, f"{step.capitalize()} "
                       f"between resumable checkpoints (and one after every epoch).")
  flags.DEFINE_integer("eval_interval", 0, f"Extra validation every N {step} (0: per epoch).")
  define_distributed_flags()
  define_trust_pickle_flag()
  cache = define_compilation_cache_flag()
  define_config_flag()
  return mesh, cache
