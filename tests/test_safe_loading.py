"""Loading shared checkpoints runs none of their code: a `.ckpt` or `training_args.bin` that tries
to run a command is refused, naming the global, while the original's files keep loading."""

import argparse
import os
import sys
import types

import pytest
import torch

from empathy_jax.errors import CheckpointError
from empathy_jax.evaluation import classifiers as C
from benchmarks import random_classifiers as ef
from empathy_jax.models import safe_pickle
from empathy_jax.models.loading import load_model


class _RunsCommand:
  """Unpickles into `os.system(command)`: what a hostile checkpoint does."""

  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return os.system, (self.command,)


def _hostile_ckpt(path, marker):
  torch.save({"state_dict": {"model.model.shared.weight": torch.zeros(2, 2)},
              "hyper_parameters": {"config": {"model_cls": "GODEL",
                                              "payload": _RunsCommand(f"touch {marker}")}}},
             path)


def test_hostile_ckpt_is_refused_and_runs_nothing(tmp_path):
  marker = tmp_path / "ran"
  path = str(tmp_path / "hostile.ckpt")
  _hostile_ckpt(path, marker)
  with pytest.raises(CheckpointError) as e:
    load_model(path)
  assert "refused to unpickle the global posix.system" in str(e.value)
  assert path in str(e.value) and "--trust_pickle" in str(e.value)
  assert not marker.exists()


def test_hostile_training_args_is_refused_and_runs_nothing(tmp_path, ed_test):
  ef.save_classifier(str(tmp_path), "bert", 9, ed_test.targets[:200])
  marker = tmp_path / "ran"
  torch.save(_RunsCommand(f"touch {marker}"), str(tmp_path / "training_args.bin"))
  with pytest.raises(CheckpointError, match="refused to unpickle the global posix.system"):
    C.load_text_classifier(str(tmp_path), C.INTENT_LABELS, "empintent")
  assert not marker.exists()


def test_a_global_called_by_builtins_is_refused_too(tmp_path):
  # eval/exec/getattr chains are the usual ways around a naive block list.
  class Evil:
    def __reduce__(self):
      return eval, ("__import__('os').system('true')",)

  path = str(tmp_path / "evil.ckpt")
  torch.save({"x": Evil()}, path)
  with pytest.raises(CheckpointError, match="builtins.eval"):
    safe_pickle.torch_load(path)


def test_the_originals_classes_load_as_inert_stand_ins(tmp_path):
  """Lightning's AttributeDict, the original's model/tokenizer classes (pickled by reference
  from its own modules), argparse.Namespace and transformers' TrainingArguments."""
  import transformers

  lightning = types.ModuleType("pytorch_lightning.utilities.parsing")
  attribute_dict = type("AttributeDict", (dict,), {"__module__": lightning.__name__})
  lightning.AttributeDict = attribute_dict
  original = types.ModuleType("dialogue_models")
  godel = type("GODEL", (), {"__module__": "dialogue_models"})
  original.GODEL = godel
  fakes = {"pytorch_lightning": types.ModuleType("pytorch_lightning"),
           "pytorch_lightning.utilities": types.ModuleType("pytorch_lightning.utilities"),
           lightning.__name__: lightning, "dialogue_models": original}
  assert not set(fakes) & set(sys.modules)  # lightning is not installed here
  sys.modules.update(fakes)
  try:
    # As HF's Trainer pickles it (constructing one needs accelerate, which tests don't have).
    training_args = object.__new__(transformers.TrainingArguments)
    training_args.__dict__.update(output_dir=str(tmp_path), learning_rate=5e-5)
    hparams = attribute_dict(config={"model_cls": godel, "model_kwargs": {"version": "large"}},
                             batch_size=8)
    torch.save({"state_dict": {"model.model.w": torch.arange(6.0).reshape(2, 3)},
                "hyper_parameters": hparams,
                "args": argparse.Namespace(model_type="roberta", max_seq_length=128),
                "training_args": training_args,
                "dtype": torch.float16}, str(tmp_path / "orig.ckpt"))
  finally:
    for name in fakes:
      del sys.modules[name]
  ckpt = safe_pickle.torch_load(str(tmp_path / "orig.ckpt"))
  assert ckpt["state_dict"]["model.model.w"].tolist() == [[0, 1, 2], [3, 4, 5]]
  hp = ckpt["hyper_parameters"]
  assert isinstance(hp, dict) and hp["batch_size"] == 8
  assert hp["config"]["model_cls"].__name__ == "GODEL"
  assert hp["config"]["model_kwargs"] == {"version": "large"}
  assert ckpt["args"].model_type == "roberta" and ckpt["args"].max_seq_length == 128
  assert ckpt["training_args"].output_dir == str(tmp_path)
  assert ckpt["training_args"].learning_rate == 5e-5
  assert ckpt["dtype"].name == "float16"  # a marker: torch is not imported to read it
  # Stand-ins are not the real classes: nothing was imported to build them.
  assert type(ckpt["training_args"]) is not transformers.TrainingArguments
