"""Test set-up: 8 simulated CPU devices (set before jax is imported) and shared fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ED_DIR = os.path.join(REPO, "datasets", "empathetic_dialogues")
REWARD_DIR = os.path.join(REPO, "datasets", "reward_dataset")


@pytest.fixture(scope="session")
def ed_test():
  from empathy_jax.data.dialogue_dataset import load_dialogue_split

  return load_dialogue_split(os.path.join(ED_DIR, "test"), data_erasure_level=0.0)
