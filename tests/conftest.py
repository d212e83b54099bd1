"""Test set-up: 8 simulated CPU devices (set before jax is imported) and shared fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One persistent compilation cache for every test and every subprocess a test starts:
# compilation dominates the suite on CPU, and the same tiny programs recur.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".cache", "jax_tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import sys  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The checkout's development tooling (benchmarks/, not in the installed package) for the tests.
sys.path.insert(1, REPO)
ED_DIR = os.path.join(REPO, "datasets", "empathetic_dialogues")
REWARD_DIR = os.path.join(REPO, "datasets", "reward_dataset")


@pytest.fixture(scope="session")
def ed_test():
  from empathy_jax.data.dialogue_dataset import load_dialogue_split

  return load_dialogue_split(os.path.join(ED_DIR, "test"), data_erasure_level=0.0)


@pytest.fixture(scope="session")
def short_dialogues(tmp_path_factory):
  """A dialogue dataset of short EmpatheticDialogues rows (one-turn contexts): every batch
  falls in the same length buckets, so subprocess runs compile one train step."""
  import json

  out = tmp_path_factory.mktemp("short_dialogues")
  for split, n in (("train", 64), ("val", 32), ("test", 32)):
    with open(os.path.join(ED_DIR, split, "contexts.json")) as f:
      contexts = json.load(f)
    with open(os.path.join(ED_DIR, split, "targets.json")) as f:
      targets = json.load(f)
    keep = [i for i in range(len(contexts)) if len(contexts[i]) == 1
            and len(contexts[i][0]) < 70 and len(targets[i]) < 50][:n]
    (out / split).mkdir()
    (out / split / "contexts.json").write_text(json.dumps([contexts[i] for i in keep]))
    (out / split / "targets.json").write_text(json.dumps([targets[i] for i in keep]))
  return str(out)
