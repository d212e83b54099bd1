"""The reward model against a PyTorch computation of the original's forward, its checkpoints
(the original's reward .ckpt and our folder), and its scorer in test.py's metrics."""

import json
import os

import numpy as np
import pytest

import hf_fixtures as hf
from conftest import REWARD_DIR
from empathy_jax.data.dialogue_dataset import load_reward_split
from empathy_jax.models import reward_model
from empathy_jax.training import reward_trainer

CLASSES = {"GODEL_TINY": "GODEL", "DialoGPT_TINY": "DialoGPT", "BlenderBot_TINY": "BlenderBot"}


FAMILIES = {"GODEL_TINY": "godel", "DialoGPT_TINY": "dialogpt", "BlenderBot_TINY": "blenderbot"}


def _original_rewards(model, fmt, name, split, contexts, weight, bias, offset):
  """The original's rewards of every response of `contexts` (indices into `split`), computed
  by the transcription of its code (`original_reference`: its tokenizer preparation,
  `encode_text`, the reward collate and `RewardModelSupervisor.forward` in eval mode), one
  context per batch as its data loader does."""
  import copy

  import torch

  import original_reference as orig

  family = FAMILIES[name]
  tok = copy.deepcopy(fmt.tokenizer)
  pad = orig.prepare_tokenizer(tok)
  out = []
  for i in contexts:
    batch = orig.reward_collate(orig.encode_text(tok, family, list(split.contexts[i])),
                                [orig.encode_text(tok, family, r) for r in split.responses[i]],
                                pad)
    out.append(orig.reward_forward(model, family, torch.from_numpy(weight),
                                   torch.tensor([float(bias)]), torch.tensor(float(offset)),
                                   *batch).double().numpy())
  return np.concatenate(out)


@pytest.mark.parametrize("name", list(CLASSES))
def test_original_reward_ckpt_scores_as_the_originals_code(name, tmp_path):
  """An original-layout reward `.ckpt` gives the original's rewards (within 1e-4; the
  reference is a transcription of the original's code, GODEL's `<PAD>` start state in the
  mean) through the scorer (test.py, score.py) and training's grouped path; exported back to
  the original's layout and to our folder, it scores the same."""
  import torch

  model, fmt = hf.registry_torch_model(name)
  d = model.config.d_model if fmt.is_encoder_decoder else model.config.n_embd
  rng = np.random.default_rng(0)
  weight = rng.normal(0, 0.5, (1, d)).astype(np.float32)
  bias, offset = np.float32(0.3), np.float32(-0.7)
  ckpt = tmp_path / "run" / "checkpoints" / "epoch=0-step=110.ckpt"
  ckpt.parent.mkdir(parents=True)
  hf.write_original_ckpt(model, str(ckpt), CLASSES[name], "tiny", {
      "linear.weight": torch.from_numpy(weight), "linear.bias": torch.tensor([bias]),
      "mean_offset": torch.tensor(offset)})
  reward = reward_model.load(str(tmp_path / "run"))
  assert reward.mean_offset == pytest.approx(float(offset))
  assert reward.pooling == reward_model.POOL_ALL

  split = load_reward_split(os.path.join(REWARD_DIR, "train"))
  theirs = _original_rewards(model, fmt, name, split, range(3), weight, bias, offset)
  contexts = [split.contexts[i] for i in range(3) for _ in split.responses[i]]
  responses = [x for i in range(3) for x in split.responses[i]]
  scorer = reward_model.RewardScorer(reward, batch_size=8)
  np.testing.assert_allclose(scorer(contexts, responses), theirs, atol=1e-4, rtol=0)
  assert np.std(theirs) > 1e-3  # the responses' rewards differ: the comparison means something
  # Training's path: each context once, its R responses grouped on it.
  data = reward_trainer.RewardData(split, fmt, batch_rows=3)
  batch = data.make_batch(np.arange(3))
  grouped = np.asarray(reward_trainer._rewards(  # pylint: disable=protected-access
      reward.backbone.model, reward.params, batch, exclude_id=reward.pool_exclude_id,
      dropout=0.6, deterministic=True, rng=None))
  real = batch["response_mask_BxRxT"].sum(-1).reshape(-1) > 0
  np.testing.assert_allclose(grouped.reshape(-1)[real] - offset, theirs, atol=1e-4, rtol=0)
  if name == "GODEL_TINY":  # the rule that was wrong before: without the start state
    legacy = reward_model.RewardModel(reward.backbone, reward.head, reward.mean_offset,
                                      reward_model.POOL_NON_PAD)
    moved = reward_model.RewardScorer(legacy, batch_size=8)(contexts, responses) - theirs
    assert np.abs(moved).max() > 1e-3

  # Export to the original's layout and back; and our folder; both score the same.
  reward_model.export_lightning(reward, str(tmp_path / "again.ckpt"))
  saved = torch.load(str(tmp_path / "again.ckpt"), weights_only=False)["state_dict"]
  assert saved["linear.weight"].shape == (1, d) and saved["linear.bias"].shape == (1,)
  assert float(saved["mean_offset"]) == pytest.approx(float(offset))
  backbone_keys = {k for k in saved if k.startswith("model.model.")}
  assert set(saved) - backbone_keys == {"linear.weight", "linear.bias", "mean_offset"}
  # (tied embeddings are written once, as transformers' save_pretrained does)
  assert backbone_keys <= {f"model.model.{k}" for k in model.state_dict()}
  for source in (str(tmp_path / "again.ckpt"), str(tmp_path / "ours")):
    if source.endswith("ours"):
      reward_model.save(reward, source)
    again = reward_model.RewardScorer(reward_model.load(source), batch_size=8)
    np.testing.assert_allclose(again(contexts, responses), theirs, atol=1e-4, rtol=0)


def test_a_reward_folder_keeps_the_pooling_it_was_trained_with(tmp_path):
  """A folder written before `reward_pooling` existed (no key in model_info.json) keeps the
  rule it was trained with (the pad-id tokens left out); a new folder records the original's;
  an unknown rule is refused."""
  import json

  from empathy_jax.errors import CheckpointError
  from empathy_jax.models import model_dir
  from empathy_jax.models.loading import load_model

  reward = reward_model.new_reward_model(load_model("GODEL_TINY"), seed=1)
  assert reward.pooling == reward_model.POOL_ALL and reward.pool_exclude_id is None
  reward_model.save(reward, str(tmp_path / "new"))
  assert reward_model.load(str(tmp_path / "new")).pooling == reward_model.POOL_ALL
  info_path = tmp_path / "new" / model_dir.INFO
  info = json.loads(info_path.read_text())
  assert info["metadata"][reward_model.POOLING_KEY] == reward_model.POOL_ALL
  del info["metadata"][reward_model.POOLING_KEY]
  info_path.write_text(json.dumps(info))
  old = reward_model.load(str(tmp_path / "new"))
  assert old.pooling == reward_model.POOL_NON_PAD
  assert old.pool_exclude_id == old.backbone.fmt.pad_id
  info["metadata"][reward_model.POOLING_KEY] = "max"
  info_path.write_text(json.dumps(info))
  with pytest.raises(CheckpointError, match="unknown reward_pooling"):
    reward_model.load(str(tmp_path / "new"))


def test_a_dialogue_model_is_not_taken_for_a_reward_model(tmp_path):
  from empathy_jax.errors import CheckpointError
  from empathy_jax.models import model_dir
  from empathy_jax.models.loading import load_model

  model_dir.save(load_model("GODEL_TINY"), str(tmp_path / "dialogue"))
  with pytest.raises(CheckpointError, match="without a reward head"):
    reward_model.load(str(tmp_path / "dialogue"))
  with pytest.raises(CheckpointError, match="no such folder"):
    reward_model.check_source(str(tmp_path / "missing"))


def test_batches_hold_every_response_and_rated_pair_once():
  """RewardData's static-shape batches against the split they came from."""
  split = load_reward_split(os.path.join(REWARD_DIR, "train"))
  fmt = hf.fmt_for("dialogpt")
  data = reward_trainer.RewardData(split, fmt, batch_rows=8)
  seen = []
  for idx in data.batch_indices(np.arange(len(split)), seed=3, epoch=1):
    batch = data.make_batch(idx)
    for row, ctx in enumerate(batch["context_index_B"]):
      if ctx < 0:
        assert batch["pair_mask_BxP"][row].sum() == 0
        continue
      seen.append(ctx)
      ctx_ids = batch["context_ids_BxC"][row][batch["context_mask_BxC"][row] == 1]
      assert fmt.decode(ctx_ids).count(split.contexts[ctx][-1]) == 1  # left padded, whole
      for j, text in enumerate(split.responses[ctx]):
        ids = batch["response_ids_BxRxT"][row, j][batch["response_mask_BxRxT"][row, j] == 1]
        assert fmt.decode(ids).strip() == text.strip()
      pairs = [(int(a), int(b), float(f)) for a, b, f, m in zip(
          batch["pair_a_BxP"][row], batch["pair_b_BxP"][row], batch["factor_BxP"][row],
          batch["pair_mask_BxP"][row]) if m]
      assert pairs == [(a, b, float(f)) for a, b, f in split.ratings[ctx]]
  assert sorted(seen) == list(range(len(split)))
  train, val = reward_trainer.split_contexts(110, 0.2, seed=0)
  assert len(val) == 22 and not set(train) & set(val) and len(set(train) | set(val)) == 110
  assert reward_trainer.split_contexts(110, 0.0, 0)[1].tolist() == list(range(110))


def test_test_py_reports_the_originals_reward_keys(tmp_path, ed_test):
  """suite.score with an original reward `.ckpt`: per-example reward_target/reward_output and
  the original's mean/var keys, equal to the transcription of the original's code on the same
  rows (not to our scorer's own numbers)."""
  import types

  import torch

  from empathy_jax.evaluation.suite import ScoreConfig, score

  model, fmt = hf.registry_torch_model("DialoGPT_TINY")
  rng = np.random.default_rng(1)
  weight = rng.normal(0, 0.5, (1, model.config.n_embd)).astype(np.float32)
  bias, offset = np.float32(-0.2), np.float32(0.25)
  ckpt = tmp_path / "run" / "checkpoints" / "epoch=0-step=1.ckpt"
  ckpt.parent.mkdir(parents=True)
  hf.write_original_ckpt(model, str(ckpt), "DialoGPT", "tiny", {
      "linear.weight": torch.from_numpy(weight), "linear.bias": torch.tensor([bias]),
      "mean_offset": torch.tensor(offset)})
  rows = [{"id": i, "context": ed_test.contexts[i], "target": ed_test.targets[i],
           "output": ed_test.targets[i + 1]} for i in range(5)]
  records, metrics, _ = score(rows, ScoreConfig(reward_model_dir=str(tmp_path / "run")))
  for side in ("target", "output"):
    one_each = types.SimpleNamespace(contexts=[r["context"] for r in rows],
                                     responses=[[r[side]] for r in rows])
    expected = _original_rewards(model, fmt, "DialoGPT_TINY", one_each, range(5), weight, bias,
                                 offset)
    assert np.std(expected) > 1e-3
    np.testing.assert_allclose([r[f"reward_{side}"] for r in records], expected, atol=1e-4)
    assert metrics[f"mean_reward_{side}"] == pytest.approx(float(np.mean(expected)), abs=1e-4)
    assert metrics[f"var_reward_{side}"] == pytest.approx(float(np.var(expected)), abs=1e-4)
  json.dumps(metrics)
