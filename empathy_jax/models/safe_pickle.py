"""Reading PyTorch files (`.ckpt`, `pytorch_model.bin`, `training_args.bin`, `.pth`) as data.

A PyTorch file is a pickle, and a pickle is a program: plain unpickling calls whatever globals
it names (`os.system` included). Checkpoints are shared between people, so this reader is closed
by construction rather than by an allow-list of real callables:

- Only `torch.save`'s zip format is read. Legacy (pre-1.6) and tar files, whose readers unpickle
  several streams outside any hook, and TorchScript archives (`constants.pkl`, `code/`), whose
  loader runs `__setstate__` methods, are refused before a byte is unpickled.
- Every global the pickle names resolves to a fresh, sealed object made for this one load: a
  tensor rebuild of our own that copies bounds-checked bytes out of the archive into a NumPy
  array, a factory for a plain container, a dtype marker, or an inert stand-in class for the
  original's own classes (its models and tokenizers, Lightning's AttributeDict, transformers'
  TrainingArguments, argparse.Namespace). None is a live library function or a module-level
  object, and BUILD on one fails, so one file cannot change how the next one loads.
- torch is never imported: tensors come back as NumPy arrays (bfloat16 as `ml_dtypes`').

Every failure is a `CheckpointError` naming the file. `trust=True` is torch's own full unpickler,
for files whose author you trust (it runs any code they hold).
"""

from __future__ import annotations

import _compat_pickle
import collections
import io
import math
import pickle
import re
import zipfile
from typing import Any, Callable

import ml_dtypes
import numpy as np

from empathy_jax.errors import CheckpointError

# torch.save's storage classes, by the name the pickle gives them.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_, "ComplexFloatStorage": np.complex64,
    "ComplexDoubleStorage": np.complex128, "UntypedStorage": np.uint8,
}
# torch dtype constants (`torch.float32`, as TorchScript-free pickles name them).
_TORCH_DTYPES = {
    "float64": np.float64, "double": np.float64, "float32": np.float32, "float": np.float32,
    "float16": np.float16, "half": np.float16, "bfloat16": ml_dtypes.bfloat16,
    "int64": np.int64, "long": np.int64, "int32": np.int32, "int": np.int32, "int16": np.int16,
    "short": np.int16, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_,
    "complex64": np.complex64, "complex128": np.complex128,
}
_TORCH_CONSTANTS = re.compile(r"^(strided|sparse_coo|contiguous_format|preserve_format|"
                              r"channels_last)$")
# Modules whose classes the original's files reference: stood in for, never imported.
_STAND_IN_MODULES = re.compile(r"^(transformers|pytorch_lightning|lightning|lightning_fabric|"
                               r"dialogue_models|custom_tokenizers|base_classes|"
                               r"\w*_supervisor)(\.|$)")
# The original's model and tokenizer classes, wherever its scripts ran them from.
_ORIGINAL_CLASSES = re.compile(r"^(GODEL|DialoGPT|BlenderBot|GPT2|T5)\w*$")
_STORAGE_KEY = re.compile(r"^\w{1,64}$")


class _Refused(Exception):
  """A reason to refuse the file; becomes a `CheckpointError` naming it."""


class Sealed:
  """A global as the unpickler sees it: callable, with no attributes to reach or set."""

  __slots__ = ("_name", "_call")

  def __init__(self, name: str, call: Callable | None):
    object.__setattr__(self, "_name", name)
    object.__setattr__(self, "_call", call)

  def __call__(self, *args, **kwargs):
    if self._call is None:
      raise _Refused(f"{self._name} is a marker, not something a checkpoint may call")
    return self._call(*args, **kwargs)

  def __setattr__(self, name, value):
    raise _Refused(f"the file tried to set {name!r} on {self._name}")

  def __setstate__(self, state):
    raise _Refused(f"the file tried to change {self._name} (a BUILD on a global)")

  def __repr__(self):
    return self._name


class StorageType(Sealed):
  """`torch.FloatStorage` and its kin: only their element type matters."""

  __slots__ = ("dtype",)

  def __init__(self, name: str, dtype):
    super().__init__(name, None)
    object.__setattr__(self, "dtype", np.dtype(dtype))


class TorchDtype(Sealed):
  """`torch.float16` and its kin, as a marker whose `name` is the dtype's name."""

  __slots__ = ("dtype", "name")

  def __init__(self, name: str, dtype):
    super().__init__(f"torch.{name}", None)
    object.__setattr__(self, "dtype", np.dtype(dtype))
    object.__setattr__(self, "name", name)


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


def _is_int(value) -> bool:
  return isinstance(value, int) and not isinstance(value, bool)


def _ints(value, what: str) -> tuple[int, ...]:
  if not isinstance(value, (tuple, list)) or not all(_is_int(v) for v in value):
    raise _Refused(f"a tensor's {what} is not a tuple of integers: {value!r}")
  return tuple(value)


class _Archive:
  """The zip archive's storages, read once each and bounds-checked."""

  def __init__(self, zf: zipfile.ZipFile, prefix: str, big_endian: bool):
    self.zf, self.prefix, self.big_endian = zf, prefix, big_endian
    self.storages: dict[str, np.ndarray] = {}

  def storage(self, pid) -> np.ndarray:
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
      raise _Refused(f"unknown persistent id {pid!r:.80}")
    _, storage_type, key, _location, numel = pid
    if not isinstance(storage_type, StorageType):
      raise _Refused(f"a storage of type {storage_type!r:.60} (not a torch storage class)")
    if not (isinstance(key, str) and _STORAGE_KEY.match(key)) or not _is_int(numel):
      raise _Refused(f"a malformed storage reference {pid!r:.80}")
    if key not in self.storages:
      name = f"{self.prefix}data/{key}"
      try:
        info = self.zf.getinfo(name)
      except KeyError:
        raise _Refused(f"storage {key} is missing from the archive") from None
      if info.compress_type != zipfile.ZIP_STORED:
        raise _Refused(f"storage {key} is compressed (torch.save never compresses)")
      dtype = storage_type.dtype
      if numel < 0 or info.file_size != numel * dtype.itemsize:
        raise _Refused(f"storage {key} holds {info.file_size} bytes, not {numel} elements of "
                       f"{dtype.name}")
      data = np.frombuffer(self.zf.read(name), dtype.newbyteorder(">") if self.big_endian
                           else dtype)
      self.storages[key] = data.astype(dtype) if self.big_endian else data
    data = self.storages[key]
    if data.dtype != storage_type.dtype:
      raise _Refused(f"storage {key} is referenced with two element types")
    return data

  def tensor(self, storage, offset, size, stride, dtype=None) -> np.ndarray:
    """A copy of the strided view, refused unless every element lies inside the storage."""
    if not isinstance(storage, np.ndarray):
      raise _Refused("a tensor rebuilt from something that is not a storage")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if not _is_int(offset) or len(size) != len(stride):
      raise _Refused(f"a tensor with offset {offset!r} and size {size} / stride {stride}")
    if dtype is not None:
      storage = storage.view(dtype)
    if min(size + stride + (offset,), default=0) < 0:
      raise _Refused(f"a tensor with a negative size, stride or offset ({size}, {stride})")
    count = math.prod(size)
    if count == 0:
      return np.zeros(size, storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
      raise _Refused(f"a tensor of size {size} and stride {stride} at offset {offset} reads "
                     f"past its storage of {storage.size} elements")
    if count > storage.size:
      raise _Refused(f"a tensor of {count} elements over a storage of {storage.size} "
                     f"(overlapping strides)")
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], size, [s * item for s in stride],
                                           writeable=False)
    return np.array(view)


def _rebuild_v2(archive: _Archive):
  def rebuild(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    del requires_grad, hooks, metadata
    return archive.tensor(storage, offset, size, stride)
  return rebuild


def _rebuild_v3(archive: _Archive):
  def rebuild(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):
    del requires_grad, hooks, metadata
    if not isinstance(dtype, TorchDtype):
      raise _Refused(f"a tensor with dtype {dtype!r:.40}")
    return archive.tensor(storage, offset, size, stride, dtype.dtype)
  return rebuild


def _parameter(data, requires_grad=False, hooks=None, state=None):
  del requires_grad, hooks, state
  if not isinstance(data, np.ndarray):
    raise _Refused("a parameter whose data is not a tensor")
  return data


def _from_type(func, new_type, args, state):
  """`torch._tensor._rebuild_from_type_v2`: the function must be one of this load's rebuilds."""
  del new_type, state
  if not isinstance(func, Sealed) or not isinstance(args, tuple):
    raise _Refused("a tensor subclass rebuilt by something other than a tensor rebuild")
  return func(*args)


def _encode(text, encoding="latin1"):
  """`_codecs.encode`, as protocol-2 pickles spell bytes."""
  if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
    raise _Refused(f"_codecs.encode with {encoding!r:.20}")
  return text.encode("latin1")


def _numpy_dtype(obj, align=False, copy=False):
  del align, copy
  dtype = np.dtype(obj if isinstance(obj, str) else str(obj))
  if dtype.hasobject:
    raise _Refused("a NumPy array of Python objects")
  return dtype


def _numpy_reconstruct(cls, shape, typecode):
  del cls, shape, typecode
  return _NumpyArray(np.empty(0, np.uint8))


class _NumpyArray:
  """A NumPy array under construction: BUILD gives it numpy's pickled state, checked."""

  def __init__(self, array):
    self.array = array

  def __setstate__(self, state):
    if not (isinstance(state, tuple) and len(state) == 5 and isinstance(state[2], np.dtype)
            and isinstance(state[4], (bytes, bytearray))):
      raise _Refused("a NumPy array whose state is not raw bytes")
    self.array.__setstate__(state)


def _numpy_scalar(dtype, data=b""):
  if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
    raise _Refused("a NumPy scalar that is not raw bytes")
  return np.frombuffer(data, dtype, count=1)[0]


def _globals(archive: _Archive) -> dict[tuple[str, str], Any]:
  """The globals one load may name, each a fresh sealed object."""
  calls: dict[tuple[str, str], Callable] = {
      ("torch._utils", "_rebuild_tensor"): _rebuild_v2(archive),
      ("torch._utils", "_rebuild_tensor_v2"): _rebuild_v2(archive),
      ("torch._utils", "_rebuild_tensor_v3"): _rebuild_v3(archive),
      ("torch._utils", "_rebuild_parameter"): _parameter,
      ("torch._utils", "_rebuild_parameter_with_state"): _parameter,
      ("torch._tensor", "_rebuild_from_type_v2"): _from_type,
      ("torch", "Size"): tuple, ("torch", "device"): str,
      ("collections", "OrderedDict"): collections.OrderedDict, ("builtins", "set"): set,
      ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
      ("builtins", "complex"): complex, ("builtins", "tuple"): tuple, ("builtins", "list"): list,
      ("builtins", "dict"): dict, ("builtins", "bytearray"): bytearray, ("builtins", "int"): int,
      ("builtins", "float"): float, ("builtins", "str"): str, ("builtins", "bool"): bool,
      ("_codecs", "encode"): _encode,
      ("numpy", "dtype"): _numpy_dtype,
      ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
      ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
      ("numpy.core.multiarray", "scalar"): _numpy_scalar,
      ("numpy._core.multiarray", "scalar"): _numpy_scalar,
  }
  table: dict[tuple[str, str], Any] = {
      key: Sealed(".".join(key), call) for key, call in calls.items()}
  # Named as arguments (a tensor subclass's type, copyreg's base class), never called.
  for key in (("torch", "Tensor"), ("torch.nn.parameter", "Parameter"), ("numpy", "ndarray"),
              ("builtins", "object")):
    table[key] = Sealed(".".join(key), None)
  for name, dtype in _STORAGE_DTYPES.items():
    table[("torch", name)] = StorageType(f"torch.{name}", dtype)
  for name, dtype in _TORCH_DTYPES.items():
    table[("torch", name)] = TorchDtype(name, dtype)
  return table


def _reconstructor(stand_ins: dict):
  """`copyreg._reconstructor(cls, base, state)` for this load's stand-in classes only."""
  def reconstruct(cls, base, state=None):
    del state
    base_name = repr(base) if isinstance(base, Sealed) else None
    if cls not in stand_ins.values() or base_name not in ("builtins.object", "builtins.dict"):
      raise _Refused(f"copyreg._reconstructor of {cls!r:.60}")
    return cls()
  return reconstruct


class _Unpickler(pickle.Unpickler):

  def __init__(self, stream, archive: _Archive):
    super().__init__(stream)
    self.archive = archive
    self.table = _globals(archive)
    self.stand_ins: dict[tuple[str, str], type] = {}
    self.table[("copyreg", "_reconstructor")] = Sealed("copyreg._reconstructor",
                                                       _reconstructor(self.stand_ins))

  def find_class(self, module, name):
    # Protocol-2 pickles (torch.save's) name Python 2 modules: map them as pickle does.
    if (module, name) in _compat_pickle.NAME_MAPPING:
      module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    if (module, name) in self.table:
      return self.table[(module, name)]
    if module == "torch" and _TORCH_CONSTANTS.match(name):
      return Sealed(f"torch.{name}", None)
    if (_STAND_IN_MODULES.match(module) or _ORIGINAL_CLASSES.match(name)
        or (module, name) == ("argparse", "Namespace")):
      return self.stand_ins.setdefault((module, name), _stand_in(module, name))
    raise _Refused(
        f"refused to unpickle the global {module}.{name}: it is not a tensor rebuild, a plain "
        f"container or a class the original's checkpoints hold")

  def persistent_load(self, pid):
    return self.archive.storage(pid)


def _unwrap(value):
  """Finished NumPy arrays in place of their builders, through containers."""
  if isinstance(value, _NumpyArray):
    return value.array
  if isinstance(value, dict):
    for k, v in value.items():
      value[k] = _unwrap(v)
  elif isinstance(value, list):
    value[:] = [_unwrap(v) for v in value]
  elif isinstance(value, tuple):
    return tuple(_unwrap(v) for v in value)
  elif isinstance(value, StandIn):
    value.__dict__.update({k: _unwrap(v) for k, v in value.__dict__.items()})
  return value


def _data_pickle(zf: zipfile.ZipFile) -> str:
  names = zf.namelist()
  if any(n.endswith("constants.pkl") or "/code/" in f"/{n}" for n in names):
    raise _Refused("a TorchScript archive (it holds constants.pkl or code/): its loader runs "
                   "the code it holds")
  data = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
  if len(data) != 1:
    raise _Refused(f"not a torch.save archive ({len(data)} data.pkl entries)")
  return data[0]


def load(path: str) -> Any:
  """The object `torch.save` wrote to `path`, with tensors as NumPy arrays; runs no code."""
  try:
    if not zipfile.is_zipfile(path):
      raise _Refused("not torch.save's zip format. Legacy (torch < 1.6) and tar files are "
                     "refused: their readers unpickle outside any safeguard. Re-save it with "
                     "torch.save in a trusted environment")
    with zipfile.ZipFile(path) as zf:
      name = _data_pickle(zf)
      prefix = name[:-len("data.pkl")]
      order = zf.read(f"{prefix}byteorder").decode().strip() \
          if f"{prefix}byteorder" in zf.namelist() else "little"
      if order not in ("little", "big"):
        raise _Refused(f"byte order {order!r:.20}")
      archive = _Archive(zf, prefix, big_endian=order == "big")
      if zf.getinfo(name).file_size > 1 << 30:
        raise _Refused("its pickle is over 1 GiB")
      return _unwrap(_Unpickler(io.BytesIO(zf.read(name)), archive).load())
  except CheckpointError:
    raise
  except _Refused as e:
    raise CheckpointError(f"{path}: {e}. If you trust whoever made this file, load it with "
                          f"--trust_pickle (full pickle: it runs any code the file "
                          f"holds)") from None
  except OSError as e:
    raise CheckpointError(f"{path}: cannot read it ({e})") from None
  except Exception as e:  # pylint: disable=broad-except
    # A malformed pickle can fail in any of pickle's or numpy's checks; all mean a bad file.
    raise CheckpointError(f"{path}: not a readable PyTorch checkpoint "
                          f"({type(e).__name__}: {e})") from None


def torch_load(path: str, trust: bool = False):
  """A PyTorch file's contents: `load` (closed), or torch's full unpickler when `trust`."""
  if not trust:
    return load(path)
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise CheckpointError(f"{path}: --trust_pickle reads with torch (pip install torch)") from e
  return torch.load(path, map_location="cpu", weights_only=False)


def state_dict_arrays(path: str) -> dict[str, np.ndarray]:
  """A `torch.save`d state dict (or a dict holding one under `state_dict`) as float32 arrays."""
  state = load(path)
  if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
    state = state["state_dict"]
  if not isinstance(state, dict) or not all(
      isinstance(k, str) and isinstance(v, np.ndarray) for k, v in state.items()):
    raise CheckpointError(f"{path}: not a state dict (names to tensors)")
  return {k: np.asarray(v, np.float32) for k, v in state.items()}
