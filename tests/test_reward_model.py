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


def _torch_rewards(model, fmt, ctx_ids, ctx_mask, resp_ids, resp_mask, weight, bias, offset):
  """The original's reward for each (context row, response row) pair, in PyTorch:
  linear(mean over the response's non-pad tokens of the last decoder hidden state)."""
  import torch

  t = lambda x: torch.from_numpy(np.asarray(x)).long()
  with torch.no_grad():
    if fmt.is_encoder_decoder:
      out = model(input_ids=t(ctx_ids), attention_mask=t(ctx_mask),
                  decoder_input_ids=t(resp_ids), decoder_attention_mask=t(resp_mask),
                  output_hidden_states=True)
      hidden = out.decoder_hidden_states[-1]
    else:
      ids, mask = torch.cat([t(ctx_ids), t(resp_ids)], 1), torch.cat([t(ctx_mask),
                                                                     t(resp_mask)], 1)
      pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
      out = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                  output_hidden_states=True)
      hidden = out.hidden_states[-1][:, ctx_ids.shape[1]:]
    pool = (t(resp_mask) * (t(resp_ids) != fmt.pad_id)).double()
    mean = (hidden.double() * pool[..., None]).sum(1) / pool.sum(1, keepdim=True)
    return (mean @ torch.from_numpy(weight).double().T + float(bias)).numpy()[:, 0] - offset


@pytest.mark.parametrize("name", list(CLASSES))
def test_original_reward_ckpt_scores_as_the_pytorch_forward(name, tmp_path):
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

  split = load_reward_split(os.path.join(REWARD_DIR, "train"))
  data = reward_trainer.RewardData(split, fmt, batch_rows=3)
  batch = data.make_batch(np.arange(3))
  b, r, t = batch["response_ids_BxRxT"].shape
  flat = lambda x: x.reshape(b * r, t)
  repeat = lambda x: np.repeat(x, r, axis=0)
  theirs = _torch_rewards(model, fmt, repeat(batch["context_ids_BxC"]),
                          repeat(batch["context_mask_BxC"]), flat(batch["response_ids_BxRxT"]),
                          flat(batch["response_mask_BxRxT"]), weight, bias, offset)
  # Training's path: each context once, its R responses grouped on it.
  grouped = np.asarray(reward_trainer._rewards(  # pylint: disable=protected-access
      reward.backbone.model, reward.params, batch, pad_id=fmt.pad_id, dropout=0.6,
      deterministic=True, rng=None)).reshape(-1) - offset
  np.testing.assert_allclose(grouped, theirs, atol=1e-5, rtol=0)
  # The scorer (test.py, score.py): one response per context, its own batching.
  contexts = [split.contexts[i] for i in range(3) for _ in split.responses[i]]
  responses = [x for i in range(3) for x in split.responses[i]]
  scorer = reward_model.RewardScorer(reward, batch_size=8)
  np.testing.assert_allclose(scorer(contexts, responses), theirs, atol=1e-5, rtol=0)
  assert np.std(theirs) > 1e-3  # the responses' rewards differ: the comparison means something

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
    np.testing.assert_allclose(again(contexts, responses), theirs, atol=1e-5, rtol=0)


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
  """suite.score with a reward folder: per-example reward_target/reward_output and the
  original's mean/var keys, equal to the scorer's own numbers."""
  from empathy_jax.evaluation.suite import ScoreConfig, score
  from empathy_jax.models.loading import load_model

  reward = reward_model.new_reward_model(load_model("DialoGPT_TINY"), seed=1)
  reward = reward.with_params(reward.params, mean_offset=0.25)
  reward_model.save(reward, str(tmp_path / "rm"))
  rows = [{"id": i, "context": ed_test.contexts[i], "target": ed_test.targets[i],
           "output": ed_test.targets[i + 1]} for i in range(5)]
  records, metrics, _ = score(rows, ScoreConfig(reward_model_dir=str(tmp_path / "rm")))
  scorer = reward_model.RewardScorer(reward)
  for side in ("target", "output"):
    expected = scorer([r["context"] for r in rows], [r[side] for r in rows])
    np.testing.assert_allclose([r[f"reward_{side}"] for r in records], expected, atol=1e-6)
    assert metrics[f"mean_reward_{side}"] == pytest.approx(float(np.mean(expected)), abs=1e-6)
    assert metrics[f"var_reward_{side}"] == pytest.approx(float(np.var(expected)), abs=1e-6)
  json.dumps(metrics)
