"""The hostile-file corpus (`tests/hostile_files/`, made by its make_corpus.py) loads nothing and
runs nothing through every entry point that reads a user's file or folder, and no file changes
how a later one loads. The corpus is first shown to be live: torch's own unpickler runs its
payloads."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from empathy_jax.errors import CheckpointError
from empathy_jax.evaluation import classifiers as C
from benchmarks import random_classifiers as ef
from empathy_jax.models import reward_model, safe_pickle
from empathy_jax.models.loading import load_model
from empathy_jax.tokenization import loading as tok_loading

CORPUS = os.path.join(REPO, "tests", "hostile_files")
# Each hostile file and the reason its refusal must give.
REASONS = {
    "legacy_pickle.ckpt": "not torch.save's zip format",
    "tar_format.ckpt": "not torch.save's zip format",
    "garbage.ckpt": "not torch.save's zip format",
    "truncated.ckpt": "not torch.save's zip format",
    "torchscript.ckpt": "a TorchScript archive",
    "reduce_system.ckpt": "refused to unpickle the global posix.system",
    "training_args.bin": "refused to unpickle the global posix.system",
    "builtins_eval.ckpt": "refused to unpickle the global builtins.eval",
    "getattr_chain.ckpt": "refused to unpickle the global builtins.getattr",
    "importlib.ckpt": "refused to unpickle the global importlib.import_module",
    "build_on_function.ckpt": "a BUILD on a global",
    "build_on_container.ckpt": "a BUILD on a global",
    "reconstructor.ckpt": "copyreg._reconstructor of collections.OrderedDict",
    "path_traversal.ckpt": "a malformed storage reference",
    "oversize.ckpt": "reads past its storage of 4 elements",
    "negative_stride.ckpt": "a negative size, stride or offset",
    "zero_stride_bomb.ckpt": "over a storage of 4 (overlapping strides)",
    "numel_mismatch.ckpt": "holds 16 bytes, not 1099511627776 elements",
    "compressed_storage.ckpt": "is compressed",
    "numpy_object.ckpt": "a NumPy array of Python objects",
    "unknown_persistent_id.ckpt": "unknown persistent id",
}
# Files that unpickle to the wrong thing: refused by the loader that reads them.
WRONG_SHAPE = {"not_a_dict.ckpt": "not a Lightning checkpoint (a list)",
               "string_weights.ckpt": "is a str, not a tensor"}
# Payloads that run a command under a plain unpickler (shown by test_the_corpus_is_live).
LIVE = ("legacy_pickle", "reduce_system", "training_args", "builtins_eval", "getattr_chain")


def _corpus_file(name):
  return os.path.join(CORPUS, name)


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
  """A working directory and $EMPATHY_PWNED folder that must stay empty."""
  pwned = tmp_path / "pwned"
  pwned.mkdir()
  monkeypatch.setenv("EMPATHY_PWNED", str(pwned))
  work = tmp_path / "cwd"
  work.mkdir()
  monkeypatch.chdir(work)
  yield tmp_path
  assert not os.listdir(pwned), f"a payload ran: {os.listdir(pwned)}"
  assert not os.listdir(work), f"a file was written: {os.listdir(work)}"


def test_the_corpus_is_live(tmp_path):
  """The payloads are real: torch's unpickler (weights_only=False) runs each one."""
  code = ("import sys, torch\n"
          "for path in sys.argv[1:]:\n"
          "  try: torch.load(path, weights_only=False)\n"
          "  except Exception: pass\n")
  files = [_corpus_file(n + (".bin" if n == "training_args" else ".ckpt")) for n in LIVE]
  subprocess.run([sys.executable, "-c", code, *files], check=True, timeout=120,
                 env=dict(os.environ, EMPATHY_PWNED=str(tmp_path)), cwd=tmp_path)
  assert sorted(os.listdir(tmp_path)) == sorted(LIVE)


def test_the_corpus_is_the_one_make_corpus_writes(tmp_path):
  """The checked-in files are what the script makes (no stale or hand-edited file)."""
  shutil.copy(os.path.join(CORPUS, "make_corpus.py"), tmp_path)
  subprocess.run([sys.executable, str(tmp_path / "make_corpus.py")], check=True, timeout=60)
  for name in sorted(set(REASONS) | set(WRONG_SHAPE) | {"valid.ckpt"}):
    assert (tmp_path / name).read_bytes() == open(_corpus_file(name), "rb").read(), name


@pytest.mark.parametrize("name", sorted(REASONS))
def test_a_hostile_file_is_refused_by_every_reader(name, sandbox):
  path = _corpus_file(name)
  readers = (safe_pickle.load, safe_pickle.state_dict_arrays)
  if name.endswith(".ckpt"):  # model loaders take .ckpt files (and folders, tested below)
    readers += (load_model, reward_model.load)
  for read in readers:
    with pytest.raises(CheckpointError) as e:
      read(path)
    assert path in str(e.value) and REASONS[name] in str(e.value), (read, str(e.value))


@pytest.mark.parametrize("name", sorted(WRONG_SHAPE))
def test_a_file_of_the_wrong_shape_is_an_error_naming_it(name, sandbox):
  path = _corpus_file(name)
  for read in (load_model, reward_model.load):
    with pytest.raises(CheckpointError) as e:
      read(path)
    assert path in str(e.value) and WRONG_SHAPE[name] in str(e.value)


def test_no_file_changes_how_a_later_one_loads(sandbox):
  """After every hostile file, in one process, a good file still loads to its exact values,
  and the library's own functions are untouched."""
  import torch._utils

  defaults = torch._utils._rebuild_tensor_v2.__defaults__
  for name in sorted(REASONS):
    with pytest.raises(CheckpointError):
      safe_pickle.load(_corpus_file(name))
  good = safe_pickle.load(_corpus_file("valid.ckpt"))
  np.testing.assert_array_equal(good["state_dict"]["model.model.shared.weight"],
                                np.ones((2, 2), np.float32))
  assert torch._utils._rebuild_tensor_v2.__defaults__ == defaults


def test_hostile_files_inside_folders_are_refused(tmp_path, sandbox, ed_test):
  """Where a folder holds the file: a classifier's training_args.bin or pytorch_model.bin, an
  EPITOME .pth, a Hugging Face model's pytorch_model.bin, a Lightning run's .ckpt."""
  hostile = _corpus_file("reduce_system.ckpt")
  clf = tmp_path / "clf"
  ef.save_classifier(str(clf), "bert", 9, ed_test.targets[:50])
  shutil.copy(_corpus_file("training_args.bin"), clf / "training_args.bin")
  with pytest.raises(CheckpointError, match="posix.system"):
    C.load_text_classifier(str(clf), C.INTENT_LABELS, "empintent")
  ef.save_classifier(str(clf), "bert", 9, ed_test.targets[:50])
  for weights in ("model.safetensors", "pytorch_model.bin"):
    if (clf / weights).exists():
      os.remove(clf / weights)
  shutil.copy(hostile, clf / "pytorch_model.bin")
  with pytest.raises(CheckpointError, match="posix.system"):
    C.load_text_classifier(str(clf), C.INTENT_LABELS, "empintent")
  epitome = tmp_path / "epitome"
  ef.save_epitome(str(epitome))
  shutil.copy(hostile, epitome / "finetuned_IP.pth")
  with pytest.raises(CheckpointError, match="posix.system"):
    C.load_epitome(str(epitome))
  run = tmp_path / "lightning_run" / "checkpoints"
  run.mkdir(parents=True)
  shutil.copy(_corpus_file("legacy_pickle.ckpt"), run / "last.ckpt")
  with pytest.raises(CheckpointError, match="zip format"):
    load_model(str(run.parent))


def test_a_folder_naming_its_own_code_is_not_run(tmp_path, sandbox):
  """`auto_map` plus a .py file: transformers is told not to trust remote code, so it neither
  runs the file nor asks on the terminal."""
  folder = tmp_path / "auto_map"
  shutil.copytree(_corpus_file("auto_map_folder"), folder)
  with pytest.raises(OSError, match="could not load a tokenizer"):
    tok_loading.load_hf_tokenizer(str(folder), "godel")
  with pytest.raises((CheckpointError, OSError, ValueError)):
    load_model(str(folder))
  with pytest.raises((OSError, ValueError)):
    C._tokenizer(str(folder))  # pylint: disable=protected-access
  assert sorted(os.listdir(folder)) == ["config.json", "evil.py", "tokenizer_config.json"]


def _run(args, cwd, env):
  return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                        cwd=cwd, env=env)


def test_launchers_refuse_hostile_files_with_an_error_line(tmp_path):
  """test.py on a hostile .ckpt and score.py on a classifier whose training_args.bin runs a
  command: `error: <file>: <reason>` as the last line, exit 1, nothing run or written."""
  pwned = tmp_path / "pwned"
  pwned.mkdir()
  env = dict(os.environ, EMPATHY_PWNED=str(pwned))
  out = tmp_path / "out"
  ckpt = _corpus_file("legacy_pickle.ckpt")
  r = _run([os.path.join(REPO, "launch", "test.py"), "--pretrained_model_dir", ckpt,
            "--dataset_dir", os.path.join(REPO, "datasets", "empathetic_dialogues"),
            "--output_dir", str(out)], tmp_path, env)
  last = (r.stdout + r.stderr).strip().splitlines()[-1]
  assert r.returncode == 1 and last.startswith(f"error: {ckpt}: not torch.save's zip format"), \
      r.stderr[-2000:]
  clf = tmp_path / "clf"
  clf.mkdir()
  for name in ("config.json", "model.safetensors"):
    (clf / name).write_text("{}")
  shutil.copy(_corpus_file("training_args.bin"), clf / "training_args.bin")
  data = tmp_path / "test_data.json"
  data.write_text(json.dumps([{"id": 0, "context": ["I lost my job."], "target": "Oh no.",
                               "output": "I am sorry."}]))
  r = _run([os.path.join(REPO, "launch", "score.py"), "--test_data", str(data),
            "--intent_classifier_dir", str(clf), "--output_dir", str(out)], tmp_path, env)
  last = (r.stdout + r.stderr).strip().splitlines()[-1]
  assert r.returncode == 1 and last.startswith("error: ") and "posix.system" in last, \
      r.stderr[-2000:]
  assert not os.listdir(pwned) and not out.exists()
