"""Prints, as JSON, every flag a launcher defines when imported (not run): name -> [default,
help]. Run as `python tests/flag_dump.py launch/X.py` (one launcher per process: absl flags are
global)."""

import importlib.util
import json
import sys

from absl import flags

spec = importlib.util.spec_from_file_location("launcher_under_test", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(json.dumps({name: [flag.default, flag.help] for name, flag in flags.FLAGS._flags().items()}))  # pylint: disable=protected-access
