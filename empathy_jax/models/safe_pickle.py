"""Unpickling checkpoints without running their code.

A `.ckpt` or `training_args.bin` is a pickle: loading one with plain pickle calls whatever
globals it names (`os.system` included). Checkpoints are shared between people, so we resolve
only an allow-list: tensor and storage rebuilds, plain containers, dtypes, numpy arrays, and
inert stand-ins for the few classes the original's files reference (its model/tokenizer classes,
Lightning's AttributeDict, transformers' TrainingArguments and enums, argparse.Namespace). A
stand-in never imports its module and only records what it is given. Any other global is refused
with an error that names it. `trust=True` is plain pickle, for files whose author you trust.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import pickle
import re
import types

from empathy_jax.errors import CheckpointError

_CALLABLES = {
    ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Size"), ("torch", "Tensor"), ("torch.nn.parameter", "Parameter"),
    ("torch", "device"), ("collections", "OrderedDict"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "slice"), ("builtins", "complex"),
    ("builtins", "tuple"), ("builtins", "list"), ("builtins", "dict"), ("builtins", "bytearray"),
    ("builtins", "int"), ("builtins", "float"), ("builtins", "str"), ("builtins", "bool"),
    ("copyreg", "_reconstructor"), ("_codecs", "encode"),
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}
# Modules whose classes the original's files reference: stood in for, never imported.
_STAND_IN_MODULES = re.compile(r"^(transformers|pytorch_lightning|lightning|lightning_fabric|"
                               r"dialogue_models|custom_tokenizers|base_classes|"
                               r"\w*_supervisor)(\.|$)")
# The original's model and tokenizer classes, wherever its scripts ran them from.
_ORIGINAL_CLASSES = re.compile(r"^(GODEL|DialoGPT|BlenderBot|GPT2|T5)\w*$")
_NUMPY_DTYPE_CLASSES = re.compile(r"^numpy\.(_core\.|core\.)?dtypes?$")


class StandIn:
  """An inert object in place of a class we do not import: keeps its arguments and state."""

  def __init__(self, *args, **kwargs):
    self.args, self.kwargs = args, kwargs

  def __setstate__(self, state):
    if isinstance(state, dict):
      self.__dict__.update(state)
    else:
      self.state = state


class DictStandIn(dict):
  """Stand-in for dict subclasses (Lightning's AttributeDict)."""

  def __setstate__(self, state):
    if isinstance(state, dict):
      self.update(state)


def _stand_in(module: str, name: str) -> type:
  base = DictStandIn if name == "AttributeDict" else StandIn
  return type(name, (base,), {"__module__": module, "__qualname__": name})


def _torch_constant(module: str, name: str):
  """torch dtypes, layouts and memory formats (`torch.float32`), looked up, never called."""
  if module != "torch":
    return None
  import torch  # pylint: disable=import-outside-toplevel

  value = getattr(torch, name, None)
  return value if isinstance(value, (torch.dtype, torch.layout, torch.memory_format)) else None


def resolve(module: str, name: str, path: str):
  """The object pickle gets for the global `module.name`, or a `CheckpointError`."""
  if (module, name) in _CALLABLES:
    return getattr(importlib.import_module(module), name)
  constant = _torch_constant(module, name)
  if constant is not None:
    return constant
  if _NUMPY_DTYPE_CLASSES.match(module) and name.endswith("DType"):
    return getattr(importlib.import_module(module), name)
  if (_STAND_IN_MODULES.match(module) or _ORIGINAL_CLASSES.match(name)
      or (module, name) == ("argparse", "Namespace")):
    return _stand_in(module, name)
  raise CheckpointError(
      f"{path}: refused to unpickle the global {module}.{name}: it is not a tensor rebuild, a "
      f"plain container or a class the original's checkpoints hold, and calling it could run "
      f"code. If you trust whoever made this file, load it with --trust_pickle (full pickle: it "
      f"runs any code the file holds).")


def pickle_module(path: str) -> types.SimpleNamespace:
  """A `pickle_module` for `torch.load` that resolves globals through `resolve`."""

  class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
      # Protocol-2 pickles (torch.save's) name Python 2 modules: map them as pickle does.
      if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
      module = _compat_pickle.IMPORT_MAPPING.get(module, module)
      return resolve(module, name, path)

  return types.SimpleNamespace(Unpickler=Unpickler, load=pickle.load, __name__="pickle")


def torch_load(path: str, trust: bool = False):
  """`torch.load` of a checkpoint on CPU: allow-listed, or plain pickle when `trust`."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise CheckpointError(f"{path}: reading PyTorch pickles needs torch "
                          f"(pip install 'empathy-jax[torch]')") from e
  if trust:
    return torch.load(path, map_location="cpu", weights_only=False)
  try:
    return torch.load(path, map_location="cpu", weights_only=False,
                      pickle_module=pickle_module(path))
  except CheckpointError:
    raise
  except (pickle.UnpicklingError, EOFError, RuntimeError) as e:
    raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from e
