"""Writes the hostile-file corpus next to this script (the files are checked in; rerun this to
rebuild them). Each file is something a stranger could hand a user as a checkpoint. Payloads
that run a command touch `$EMPATHY_PWNED/<case>` (the test points it at a fresh folder), and
those that write a file write `PWNED_<case>` in the working directory, so a test sees whether
anything ran.

  python tests/hostile_files/make_corpus.py
"""

import io
import json
import os
import pickle
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def _body(obj) -> bytes:
  """A pickle's opcodes without its PROTO header and STOP, to splice into a crafted stream."""
  buf = io.BytesIO()
  pickler = pickle.Pickler(buf, protocol=2)
  pickler.fast = True  # no memo: spliced bodies cannot clash
  pickler.dump(obj)
  data = buf.getvalue()
  assert data[:2] == b"\x80\x02" and data[-1:] == b"."
  return data[2:-1]


def _system(case: str) -> bytes:
  """A pickle that runs `touch $EMPATHY_PWNED/<case>` when loaded by plain pickle."""
  return (b"\x80\x02cposix\nsystem\n" + _body((f'touch "$EMPATHY_PWNED/{case}"',))
          + b"R.")


def _tensor(key: str, size, stride, offset=0, storage="FloatStorage", numel=4) -> bytes:
  """`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())`."""
  return (b"ctorch._utils\n_rebuild_tensor_v2\n("
          + b"(X\x07\x00\x00\x00storage" + f"ctorch\n{storage}\n".encode()
          + _body(key) + _body("cpu") + _body(numel) + b"tQ"
          + _body(offset) + _body(tuple(size)) + _body(tuple(stride))
          + b"\x89ccollections\nOrderedDict\n)Rt" + b"R")


def _zip(name: str, entries: dict, compress=zipfile.ZIP_STORED) -> None:
  with zipfile.ZipFile(os.path.join(HERE, name), "w", compress) as zf:
    for entry, data in entries.items():  # a fixed date: the same bytes on every rebuild
      zf.writestr(zipfile.ZipInfo(entry, date_time=(1980, 1, 1, 0, 0, 0)), data, compress)


def _ckpt(name: str, pickle_bytes: bytes, storages=None, **kw) -> None:
  entries = {"archive/data.pkl": pickle_bytes, "archive/byteorder": b"little",
             "archive/version": b"3\n"}
  entries.update({f"archive/data/{k}": v for k, v in (storages or {}).items()})
  _zip(name, entries, **kw)


def _state(tensor_pickle: bytes) -> bytes:
  """{'state_dict': {'model.model.shared.weight': <tensor>}} around a tensor's opcodes."""
  return (b"}(X\x0a\x00\x00\x00state_dict}(X\x19\x00\x00\x00model.model.shared.weight"
          + tensor_pickle + b"uu.")


FOUR_FLOATS = b"\x00\x00\x80?" * 4  # 1.0 four times, little-endian float32


def main():
  # Legacy (torch < 1.6) files are a run of pickles read outside any hook: the first runs.
  with open(os.path.join(HERE, "legacy_pickle.ckpt"), "wb") as f:
    f.write(_system("legacy_pickle"))
  # The tar format: a tar whose `pickle` member runs a command.
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w") as tar:
    for member in ("sys_info", "pickle", "tensors", "storages"):
      data = _system("tar_format")
      info = tarfile.TarInfo(member)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  with open(os.path.join(HERE, "tar_format.ckpt"), "wb") as f:
    f.write(buf.getvalue())
  # TorchScript: torch.load hands a zip with constants.pkl to torch.jit.load, whose unpickler
  # runs the archive's classes; this one would write a file through torch.from_file.
  _zip("torchscript.ckpt", {
      "archive/data.pkl": _system("torchscript"),
      "archive/constants.pkl": (b"\x80\x02ctorch\nfrom_file\n"
                                + _body(("PWNED_torchscript", True, 64)) + b"R."),
      "archive/code/__torch__.py": b"import os\nos.system('touch PWNED_torchscript')\n",
      "archive/version": b"3\n"})
  # A plain os.system in the zip format, as a `.ckpt` and as a classifier's training_args.bin.
  _ckpt("reduce_system.ckpt", _system("reduce_system"))
  _ckpt("training_args.bin", _system("training_args"))
  # The usual ways around a block list: builtins.eval, getattr chains, importlib.
  _ckpt("builtins_eval.ckpt", b"\x80\x02cbuiltins\neval\n"
        + _body(("__import__('os').system('touch \"$EMPATHY_PWNED/builtins_eval\"')",))
        + b"R.")
  _ckpt("getattr_chain.ckpt", b"\x80\x02cbuiltins\ngetattr\n"
        + b"cbuiltins\n__import__\n" + _body(("os",)) + b"R" + _body("system")
        + b"\x86R" + _body(('touch "$EMPATHY_PWNED/getattr_chain"',)) + b"R.")
  _ckpt("importlib.ckpt", b"\x80\x02cimportlib\nimport_module\n" + _body(("os",)) + b"R.")
  # BUILD on a rebuild function: plain allow-lists hand the real function over, and this
  # sets its defaults for the whole process (a later file's tensors come out changed).
  _ckpt("build_on_function.ckpt", b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n"
        + _body((None, {"__defaults__": (True, None, None)})) + b"b0"
        + _state(_tensor("0", (4,), (1,))), {"0": FOUR_FLOATS})
  _ckpt("build_on_container.ckpt", b"\x80\x02ccollections\nOrderedDict\n"
        + _body((None, {"__init__": None})) + b"b.")
  # copyreg._reconstructor of a class that is not a stand-in (here: a real dict subclass).
  _ckpt("reconstructor.ckpt", b"\x80\x02ccopyreg\n_reconstructor\n"
        + b"ccollections\nOrderedDict\ncbuiltins\nobject\nN\x87R.")
  # Storage keys and entries that point outside the archive's own data folder.
  _ckpt("path_traversal.ckpt", b"\x80\x02" + _state(_tensor("../../../etc/passwd", (4,), (1,))),
        {"0": FOUR_FLOATS})
  # Tensors that would read outside their storage, or allocate far more than the file holds.
  _ckpt("oversize.ckpt", b"\x80\x02" + _state(_tensor("0", (1_000_000,), (1,))), {"0": FOUR_FLOATS})
  _ckpt("negative_stride.ckpt", b"\x80\x02" + _state(_tensor("0", (4,), (-1,), offset=3)),
        {"0": FOUR_FLOATS})
  _ckpt("zero_stride_bomb.ckpt", b"\x80\x02" + _state(_tensor("0", (100_000, 100_000), (0, 0))),
        {"0": FOUR_FLOATS})
  _ckpt("numel_mismatch.ckpt", b"\x80\x02" + _state(_tensor("0", (4,), (1,), numel=1 << 40)),
        {"0": FOUR_FLOATS})
  _ckpt("compressed_storage.ckpt", b"\x80\x02" + _state(_tensor("0", (4,), (1,))),
        {"0": FOUR_FLOATS}, compress=zipfile.ZIP_DEFLATED)
  # A NumPy array of Python objects (its state would be unpickled objects).
  _ckpt("numpy_object.ckpt", b"\x80\x02cnumpy\ndtype\n" + _body(("O8", False, True))
        + b"R.")
  # Broken files: truncated, garbage, not a dict, tensors that are not tensors.
  _ckpt("valid.ckpt", b"\x80\x02" + _state(_tensor("0", (2, 2), (2, 1))), {"0": FOUR_FLOATS})
  with open(os.path.join(HERE, "valid.ckpt"), "rb") as f:
    whole = f.read()
  with open(os.path.join(HERE, "truncated.ckpt"), "wb") as f:
    f.write(whole[:len(whole) // 2])
  with open(os.path.join(HERE, "garbage.ckpt"), "wb") as f:
    f.write(bytes(range(256)) * 4)
  _ckpt("not_a_dict.ckpt", b"\x80\x02" + _body([1, 2, 3]) + b".")
  _ckpt("string_weights.ckpt", b"\x80\x02" + _body(
      {"state_dict": {"model.model.shared.weight": "not a tensor"}}) + b".")
  _ckpt("unknown_persistent_id.ckpt", b"\x80\x02" + _state(b"(X\x03\x00\x00\x00fooK\x01tQ"))
  # A Hugging Face folder whose tokenizer names its own code (auto_map and a .py file).
  folder = os.path.join(HERE, "auto_map_folder")
  os.makedirs(folder, exist_ok=True)
  with open(os.path.join(folder, "config.json"), "w") as f:
    json.dump({"model_type": "evil", "architectures": ["EvilModel"],
               "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel",
                            "AutoTokenizer": ["evil.EvilTokenizer", None]}}, f)
  with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "EvilTokenizer",
               "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}, f)
  with open(os.path.join(folder, "evil.py"), "w") as f:
    f.write("import os\nopen(os.path.join(os.environ.get('EMPATHY_PWNED', '.'), "
            "'auto_map'), 'w').close()\n")


if __name__ == "__main__":
  main()
