"""README's main job: fine-tune GODEL_TINY on a slice of EmpatheticDialogues, then test it.

Runs on a laptop CPU in a few minutes with what the package ships (no downloads): the tiny
model's tokenizer is packaged and the dataset is in the repository's `datasets/` folder.
"""

from __future__ import annotations

import dataclasses
import os

from empathy_jax.evaluation.suite import format_table
from empathy_jax.evaluation.testing import TestConfig, run_test
from empathy_jax.training.sft import SFTConfig, train_dialogue_model


@dataclasses.dataclass(frozen=True)
class QuickstartConfig:
  dataset_dir: str = "datasets/empathetic_dialogues"
  output_dir: str = "runs/quickstart"
  model: str = "GODEL_TINY"
  max_epochs: int = 2
  batch_size: int = 16
  initial_lr: float = 5e-4
  max_train_examples: int = 1600
  max_val_examples: int = 160
  test_examples: int = 128
  max_new_tokens: int = 24


def run_quickstart(cfg: QuickstartConfig = QuickstartConfig()) -> dict:
  summary = train_dialogue_model(SFTConfig(
      dataset_dir=cfg.dataset_dir, output_dir=cfg.output_dir, model=cfg.model,
      max_epochs=cfg.max_epochs, batch_size=cfg.batch_size, initial_lr=cfg.initial_lr,
      max_train_examples=cfg.max_train_examples, max_val_examples=cfg.max_val_examples))
  run_dir = summary["run_dir"]
  metrics = run_test(TestConfig(
      dataset_dir=cfg.dataset_dir, pretrained_model_dir=run_dir,
      output_dir=os.path.join(run_dir, "test"), max_examples=cfg.test_examples,
      generation={"max_new_tokens": cfg.max_new_tokens}))
  print(format_table(metrics))
  print(f"model: {run_dir} (best/), results: {os.path.join(run_dir, 'test')}")
  return metrics
