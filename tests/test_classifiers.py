"""Flax ports of the metric classifiers against their PyTorch originals."""

import os

import numpy as np
import pytest

from benchmarks import random_classifiers as ef
from empathy_jax.errors import CheckpointError
from empathy_jax.evaluation import classifiers as C


@pytest.mark.parametrize("model_type", ["roberta", "bert"])
def test_sequence_classifier_logits_match_pytorch(model_type, tmp_path, ed_test):
  import torch

  texts = ed_test.targets[:40] + [" ".join(ed_test.contexts[0]) * 3, ""]  # long one is cut
  model, tok = ef.save_classifier(str(tmp_path), model_type, 9, ed_test.targets[:500])
  clf = C.load_text_classifier(str(tmp_path), C.INTENT_LABELS, "empintent")
  ours = clf.logits(texts, batch_size=16)
  enc = tok(texts, max_length=32, truncation=True, padding="max_length", return_tensors="pt")
  assert enc["input_ids"].shape[1] == 32
  with torch.no_grad():
    theirs = model(**enc).logits.numpy()
  np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)
  np.testing.assert_array_equal(ours.argmax(-1), theirs.argmax(-1))


def test_epitome_batched_equals_original_one_at_a_time(tmp_path, ed_test):
  import torch
  from transformers import AutoTokenizer

  from empathy_jax.tokenization.loading import resolve_source

  models = ef.save_epitome(str(tmp_path))
  scorer = C.load_epitome(str(tmp_path))
  seekers = [c[-1] for c in ed_test.contexts[:12]]
  responses = ed_test.targets[:12]
  tok = AutoTokenizer.from_pretrained(resolve_source("package:roberta"))
  for mech, model in models.items():
    ours = scorer.logits(mech, seekers, responses, batch_size=8)
    for i, (s, r) in enumerate(zip(seekers, responses)):
      # The original: one example at a time, no padding at all.
      se = tok(s, max_length=64, truncation=True, return_tensors="pt")
      re_ = tok(r, max_length=64, truncation=True, return_tensors="pt")
      with torch.no_grad():
        ref = model(se["input_ids"], se["attention_mask"], re_["input_ids"],
                    re_["attention_mask"]).numpy()[0]
      np.testing.assert_allclose(ours[i], ref, atol=1e-4, rtol=0)
    assert (scorer.levels(mech, seekers, responses) == ours.argmax(-1)).all()


def test_missing_files_are_named(tmp_path, ed_test):
  ef.save_classifier(str(tmp_path / "c"), "roberta", 32, [])
  os.remove(tmp_path / "c" / "training_args.bin")
  with pytest.raises(CheckpointError, match="training_args.bin is missing"):
    C.load_text_classifier(str(tmp_path / "c"), C.EMOTION_LABELS, "emotion")
  with pytest.raises(CheckpointError, match="finetuned_IP.pth is missing"):
    C.load_epitome(str(tmp_path))
  ef.save_classifier(str(tmp_path / "d"), "roberta", 5, [])
  with pytest.raises(CheckpointError, match="5 outputs, expected 32"):
    C.load_text_classifier(str(tmp_path / "d"), C.EMOTION_LABELS, "emotion")


def test_classification_report_matches_sklearn_definitions():
  truth = np.array([0, 0, 1, 2, 2, 2, 1, 0])
  pred = np.array([0, 1, 1, 2, 0, 2, 2, 0])
  acc, f1, per = C.classification_report(pred, truth, ("a", "b", "c"))
  assert acc == pytest.approx(5 / 8)
  # class a: tp 2, predicted 3, true 3 -> p = r = 2/3; b: tp 1, p 1/2, r 1/2; c: tp 2, p 2/3, r 2/3
  assert per["a_precision"] == pytest.approx(2 / 3) and per["b_recall"] == pytest.approx(0.5)
  assert f1 == pytest.approx(3 / 8 * 2 / 3 + 2 / 8 * 0.5 + 3 / 8 * 2 / 3)
