"""empathy-jax: a JAX/Flax reimplementation of *Automating Empathy in Dialogue Systems*."""

import glob
import os

from setuptools import find_packages, setup

CORE = [
    "jax==0.10.2",
    "jaxlib==0.10.2",
    "flax==0.12.8",
    "optax==0.2.8",
    "orbax-checkpoint==0.12.8",
    "absl-py==2.5.1",
    "transformers==5.23.0",
    "datasets==5.2.0",
    "tokenizers==0.23.3",
    "sentencepiece==0.2.3",
    "safetensors==0.8.0",
    "numpy>=2.0",
    "tqdm==4.70.1",
    "tensorboardX==2.6.5",
    "nltk==3.10.4",
    "matplotlib==3.11.2",
    "ml-collections==1.1.0",
    "ml-dtypes==0.7.0",  # bfloat16 tensors read from PyTorch files (models/safe_pickle.py)
]


def _model_assets():
  """Every file of the shipped model folders (orbax trees are nested), relative to the
  package."""
  root = os.path.join("empathy_jax", "assets", "models")
  return [os.path.relpath(os.path.join(d, f), "empathy_jax")
          for d, _, files in os.walk(root) for f in files]


setup(
    name="empathy-jax",
    version="0.1.0",
    description=__doc__,
    python_requires=">=3.11",
    packages=find_packages(include=["empathy_jax", "empathy_jax.*"]),
    package_data={"empathy_jax.tokenization": ["assets/*/*"], "empathy_jax": _model_assets(),
                  "empathy_jax.survey": ["page/*"]},  # the raters' page
    include_package_data=True,
    # The launchers, on PATH after `pip install` (e.g. `train_dialogue_model.py --help`);
    # benchmark.py runs from a clone, beside benchmarks/ (development tooling, not shipped).
    scripts=sorted(p for p in glob.glob("launch/*.py") if os.path.basename(p) != "benchmark.py"),
    install_requires=CORE,
    extras_require={
        # torch is only a reference in tests (parity with transformers' PyTorch models) and the
        # reader of original .ckpt / .bin files; the CPU build is pinned exactly.
        # tensorflow-text: the tf.data input path's tests run in CI too.
        # pytest-xdist: the suite runs in two workers (much of a serial run waits on
        # subprocesses, tokenizer loading and I/O; 15.9 -> 8.3 minutes warm on 2 cores).
        # selenium: the report page is opened in a real browser (Debian's chromium and
        # chromium-driver, installed apart: README's set-up).
        "test": ["torch==2.13.0", "pytest==9.0.3", "pytest-xdist==3.8.0", "pexpect==4.8.0",
                 "tensorflow-text==2.21.1", "selenium==4.51.0"],
        "torch": ["torch==2.13.0"],
        "tf": ["tensorflow-text==2.21.1"],
    },
)
