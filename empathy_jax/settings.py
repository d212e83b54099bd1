"""Settings defined once: a config dataclass field carries its default, its help and its
choices (`setting`), and a launcher's absl flags are generated from those fields
(`define_flags`), so a flag can never disagree with the field it sets.

  @dataclasses.dataclass(frozen=True, kw_only=True)
  class PPORunConfig(TrainRunConfig):
    clip_epsilon: float = setting(0.2, "PPO ratio clipping.")

  settings.define_flags(PPORunConfig)  # in the launcher, at import time
"""

from __future__ import annotations

import dataclasses
import types
import typing

from absl import flags

HELP, CHOICES = "help", "choices"

_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


def setting(default=dataclasses.MISSING, help: str = "", choices: tuple[str, ...] | None = None):  # pylint: disable=redefined-builtin
  """A config field that is also a flag: its default, help and (for strings) choices."""
  if not help:
    raise ValueError("a setting needs its help text")
  metadata = {HELP: help, CHOICES: tuple(choices) if choices else None}
  return dataclasses.field(default=default, metadata=metadata)


def flag_fields(config_cls) -> list[dataclasses.Field]:
  """The fields of `config_cls` declared with `setting` (those that are flags)."""
  return [f for f in dataclasses.fields(config_cls) if HELP in f.metadata]


def _base_type(annotation):
  """int for `int`, `int | None` and `Optional[int]`."""
  args = [a for a in typing.get_args(annotation) if a is not type(None)]
  if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
    if len(args) != 1:
      raise TypeError(f"a setting's type must be one type, optionally with None; got "
                      f"{annotation}")
    return args[0]
  return annotation


def define_flags(config_cls, flag_values=flags.FLAGS) -> list[str]:
  """Defines an absl flag for every `setting` field of `config_cls` not defined already:
  the field's name, default (None for a required field), help and choices. Returns the
  names defined."""
  hints = typing.get_type_hints(config_cls)
  defined = []
  for f in flag_fields(config_cls):
    default = None if f.default is dataclasses.MISSING else f.default
    if f.name in flag_values:  # defined by a shared group: it must agree with the field
      if flag_values[f.name].default != default:
        raise ValueError(f"--{f.name} is defined already with default "
                         f"{flag_values[f.name].default!r}; {config_cls.__name__}.{f.name} "
                         f"says {default!r}")
      continue
    choices = f.metadata[CHOICES]
    if choices:
      flags.DEFINE_enum(f.name, default, list(choices), f.metadata[HELP],
                        flag_values=flag_values)
    else:
      kind = _base_type(hints[f.name])
      if kind not in _DEFINE:
        raise TypeError(f"{config_cls.__name__}.{f.name}: no flag type for {kind}")
      _DEFINE[kind](f.name, default, f.metadata[HELP], flag_values=flag_values)
    defined.append(f.name)
  return defined


def from_flags(config_cls, read=None, **values):
  """`config_cls` built from the parsed values of its `setting` flags (`values` win); `read`
  (name -> value) reads them otherwise than from the flags alone (an experiment config's
  fields: `launch_flags.value`)."""
  read = read or (lambda name: flags.FLAGS[name].value)
  given = {f.name: read(f.name) for f in flag_fields(config_cls)}
  return config_cls(**{**given, **values})


def check_choices(config) -> None:
  """Raises ValueError naming the flag when a field declared with choices holds another
  value (configs built in code or from config files do not pass through absl)."""
  for f in flag_fields(type(config)):
    choices, given = f.metadata[CHOICES], getattr(config, f.name)
    if choices and given is not None and given not in choices:
      raise ValueError(f"--{f.name} must be one of {', '.join(choices)}, got {given!r}")
