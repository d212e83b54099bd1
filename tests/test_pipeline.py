import collections

import numpy as np

from empathy_jax.data.pipeline import Batcher, bucket_length, make_batcher, tokenize_split
from empathy_jax.evaluation.testing import EVAL_BUCKETS, eval_batcher
from test_tokenization import fmt_for


def test_bucketing_keeps_distinct_shapes_small_over_whole_split(ed_test, tmp_path):
  for name in ("GODEL_TINY", "DialoGPT_TINY", "BlenderBot_TINY"):
    fmt = fmt_for(name)
    table = tokenize_split(ed_test, fmt, cache_dir=str(tmp_path))
    batcher = make_batcher(fmt, 32)
    batches = list(batcher.batches(table, seed=1))
    shapes = collections.Counter(b.shape_key for b in batches)
    assert len(batches) == -(-len(ed_test) // 32)
    assert len(shapes) <= 16, shapes  # compiles per split: bounded by the bucket pairs
    real = sum(b.context_mask_BxC.sum() + b.target_mask_BxT.sum() for b in batches)
    padded = sum(b.context_mask_BxC.size + b.target_mask_BxT.size for b in batches)
    assert real / padded > 0.45  # length grouping keeps padding down
    seen = np.concatenate([b.example_index_B for b in batches])
    assert sorted(seen[seen >= 0].tolist()) == list(range(len(ed_test)))  # nothing dropped


def test_padding_sides_and_filler_rows(ed_test):
  subset = ed_test.select(range(5))
  for name, left in (("GODEL_TINY", False), ("DialoGPT_TINY", True)):
    fmt = fmt_for(name)
    table = tokenize_split(subset, fmt)
    (batch,) = list(make_batcher(fmt, 8).batches(table))
    assert batch.context_ids_BxC.shape[0] == 8
    assert sorted(batch.example_index_B.tolist()[:5]) == [0, 1, 2, 3, 4]
    assert batch.example_index_B.tolist()[5:] == [-1, -1, -1]
    assert not batch.context_mask_BxC[5:].any() and not batch.target_mask_BxT[5:].any()
    for i, example in enumerate(batch.example_index_B[:5].tolist()):
      ids = table[example]["context_ids"]
      row, mask = batch.context_ids_BxC[i], batch.context_mask_BxC[i]
      real = row[mask == 1].tolist()
      assert real == ids
      if left:
        assert mask[-1] == 1 and (mask[:len(mask) - len(ids)] == 0).all()
      else:
        assert mask[0] == 1 and (mask[len(ids):] == 0).all()
      assert (row[mask == 0] == fmt.pad_id).all()
      assert batch.target_ids_BxT[i][batch.target_mask_BxT[i] == 1].tolist() == table[example][
          "target_ids"]


def test_shuffling_is_deterministic_and_resumable(ed_test):
  fmt = fmt_for("BlenderBot_TINY")
  table = tokenize_split(ed_test.select(range(40)), fmt)
  batcher = make_batcher(fmt, 8)
  a = [b.example_index_B.tolist() for b in batcher.batches(table, seed=7, epoch=2)]
  b = [b.example_index_B.tolist() for b in batcher.batches(table, seed=7, epoch=2)]
  c = [b.example_index_B.tolist() for b in batcher.batches(table, seed=7, epoch=3)]
  resumed = [b.example_index_B.tolist() for b in batcher.batches(table, seed=7, epoch=2,
                                                                 start_batch=3)]
  assert a == b and a != c and resumed == a[3:]


def test_bucket_length():
  assert bucket_length(5, (16, 32), 512) == 16
  assert bucket_length(17, (16, 32), 512) == 32
  assert bucket_length(40, (16, 32), 100) == 100
  assert bucket_length(40, (16, 32, 64, 128), 50) == 50
  assert Batcher(4, 0, False, 10, 10).num_batches(9) == 3



def test_test_py_batches_share_a_context_bucket_and_similar_targets(ed_test):
  """test.py's order (context bucket, then target length) pads less on both sides than
  sorting by context + target length: what each batch pads to, from the lengths here."""
  fmt = fmt_for("GODEL_TINY")
  table = tokenize_split(ed_test, fmt)
  contexts = np.asarray([len(c) for c in table["context_ids"]])
  targets = np.asarray([len(t) for t in table["target_ids"]])
  bucket = lambda length: bucket_length(length, EVAL_BUCKETS, fmt.max_length)

  def padded(batches):
    """(context positions, target chunks of 16 the scoring loop runs) of the batches."""
    return (sum(bucket(contexts[i].max()) for i in batches),
            sum(-(-targets[i].max() // 16) for i in batches))

  ours = eval_batcher(fmt, 32, table).batch_indices(table)
  by_total = np.argsort(-(contexts + targets), kind="stable")
  ctx, chunks = padded(ours)
  ref_ctx, ref_chunks = padded([by_total[s:s + 32] for s in range(0, len(by_total), 32)])
  assert ctx < ref_ctx and chunks < 0.8 * ref_chunks, (ctx, ref_ctx, chunks, ref_chunks)
  context_bucket = [bucket(contexts[i].max()) for i in ours]
  assert context_bucket == sorted(context_bucket, reverse=True)  # longest first
  mixed = sum(len({bucket(c) for c in contexts[i]}) > 1 for i in ours)
  assert mixed < len(set(context_bucket))  # only batches at a bucket boundary mix
  assert sorted(np.concatenate(ours).tolist()) == list(range(len(ed_test)))
