"""Run by test_tfdata.py in its own process (TensorFlow stays out of the JAX test process):
the tf.data path against the default tokenizer on a sample of the test and validation splits
plus rows made to hit every rule; per-host shards and resume. Prints one JSON line."""

import json
import os
import sys


from empathy_jax.data import tfdata
from empathy_jax.data.dialogue_dataset import DialogueSplit, load_dialogue_split
from empathy_jax.models.loaded import format_for

ED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets",
                  "empathetic_dialogues")
# Rows for each rule: added tokens inside turns, ties between equal-score segmentations
# (transformers' order), knowledge, an instruction, full-width and accented text, extra spaces,
# a context too long for max_length (cut from the left after the instruction), a long target.
MADE = DialogueSplit(
    contexts=[["Hmmm! awwww hahahaha", "mmmmmm... wwwwww"], ["I said EOS twice:EOS", "a<PAD>b"],
              ["ｆｕｌｌ　ｗｉｄｔｈ and café", "  spaced   out  "], ["Tell me."],
              [" ".join(f"word{i} is here" for i in range(300)), "and the last turn"],
              ["short"]],
    targets=["ok", "EOS<PAD>", "Hmmmm.", "Sure!", "fine", " ".join(["long"] * 700)],
    instructions=[None, None, "Respond kindly.", None, None, None],
    knowledge=[None, "Cats purr. EOS", None, "Some fact.", None, None])


def main():
  fmt = format_for("godel", "package:godel", 512)
  samples = []
  for name in ("test", "val"):
    split = load_dialogue_split(os.path.join(ED, name), data_erasure_level=0.0)
    samples.append(split.select(range(0, len(split), max(1, len(split) // 150))))
  checked = DialogueSplit(*[sum((getattr(s, f) for s in (*samples, MADE)), [])
                            for f in ("contexts", "targets", "instructions", "knowledge")])
  rows = list(tfdata.iterate(checked, fmt))  # one pass: each pass traces the pipeline anew
  problems = tfdata.compare(checked, fmt, rows)
  made = rows[-len(MADE):]
  truncated = [bool(r["context_truncated"]) for r in made]
  target_cut = [bool(r["target_truncated"]) for r in made]
  # Two hosts: each its own rows, in order; together every row once. Resume: from position 3
  # of host 1's rows, the rest of them.
  small = load_dialogue_split(os.path.join(ED, "test"), 0.0).select(range(20))
  whole = {i: c.ids for i, c in enumerate(fmt.encode_contexts(
      small.contexts, small.instructions, small.knowledge))}
  hosts = [[int(r["index"]) for r in tfdata.iterate(small, fmt, num_shards=2, shard_index=h)]
           for h in range(2)]
  resumed = [(int(r["index"]), r["context_ids"].tolist())
             for r in tfdata.iterate(small, fmt, num_shards=2, shard_index=1, start=3)]
  print(json.dumps({
      "rows": len(rows), "problems": problems[:5], "n_problems": len(problems),
      "made_truncated": truncated, "made_target_truncated": target_cut, "hosts": hosts,
      "resumed_index": [i for i, _ in resumed],
      "resumed_equal": all(whole[i] == ids for i, ids in resumed),
      "longest_made": int(max(len(c.ids) for c in fmt.encode_contexts(
          MADE.contexts, MADE.instructions, MADE.knowledge)))}))


if __name__ == "__main__":
  sys.exit(main())
