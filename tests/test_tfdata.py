"""The tf.data input path (tensorflow-text, the [tf] extra): the same ids as the default
tokenizer, per-host shards, resume; without the extra, a message that says how to install it.
TensorFlow runs in a subprocess, away from the JAX test process."""

import json
import os
import subprocess
import sys

from conftest import REPO


def _python(code_or_file, *args, env_extra=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
  cmd = [sys.executable, *(["-c", code_or_file] if "\n" in code_or_file or ";" in code_or_file
                           else [code_or_file]), *args]
  return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


def test_tfdata_ids_equal_the_default_tokenizer_and_shard_and_resume():
  out = _python(os.path.join(REPO, "tests", "tfdata_check.py"))
  assert out.returncode == 0, out.stderr[-3000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["n_problems"] == 0, result["problems"]
  assert result["rows"] > 300
  # The long context (and only it) is cut; so is the long target.
  assert result["made_truncated"] == [False, False, False, False, True, False]
  assert result["made_target_truncated"] == [False] * 5 + [True]
  assert result["longest_made"] == 512
  assert result["hosts"] == [list(range(0, 20, 2)), list(range(1, 20, 2))]
  assert result["resumed_index"] == list(range(7, 20, 2)) and result["resumed_equal"]


def test_without_the_extra_the_flag_says_how_to_install_it():
  # tensorflow_text made unimportable, as on an install without the [tf] extra.
  code = ("import sys; sys.modules['tensorflow_text'] = None\n"
          "from empathy_jax.data import tfdata\n"
          "try:\n  tfdata.require_tf()\nexcept ImportError as e:\n  print(e)\n")
  out = _python(code)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "pip install 'empathy-jax[tf]'" in out.stdout and "--input_pipeline tfdata" in out.stdout
