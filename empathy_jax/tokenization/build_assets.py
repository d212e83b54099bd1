"""Rebuilds the tokenizer files shipped in `empathy_jax/tokenization/assets/`.

Run once by maintainers (`python -m empathy_jax.tokenization.build_assets --shared ../shared`);
users never need it: the package carries the results so a fresh install works offline.

- godel/: GODEL's tokenizer rebuilt from T5's `spiece.model` plus GODEL's added tokens
  (`EOS` = 32100, `<PAD>` = 32101), saved as a fast `tokenizer.json`.
- dialogpt/: GPT-2's byte-level BPE files, unchanged (DialoGPT uses them as they are).
- blenderbot_tiny/: BlenderBot-400M's `vocab.json` is not available offline, so the tiny
  BlenderBot variant uses a byte-level BPE trained here on EmpatheticDialogues train, laid out as
  BlenderBot's (`<pad>` 0, `<s>` 1, `</s>` 2, `<unk>` 3, 8008 entries, `<mask>` added at 8008).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
GODEL_MAX_LENGTH = 512
BLENDERBOT_MAX_LENGTH = 128
BLENDERBOT_VOCAB = 8008


def build_godel(shared: str) -> None:
  from transformers import T5Tokenizer

  src = os.path.join(shared, "tokenizers", "microsoft-GODEL-v1_1-base-seq2seq")
  tmp = os.path.join(ASSETS, "_godel_src")
  os.makedirs(tmp, exist_ok=True)
  for name in ("spiece.model", "added_tokens.json"):
    shutil.copyfile(os.path.join(src, name), os.path.join(tmp, name))
  tok = T5Tokenizer.from_pretrained(tmp, model_max_length=GODEL_MAX_LENGTH)
  assert tok.convert_tokens_to_ids(["EOS", "<PAD>"]) == [32100, 32101], "GODEL ids moved"
  out = os.path.join(ASSETS, "godel")
  shutil.rmtree(out, ignore_errors=True)
  tok.save_pretrained(out)
  # The SentencePiece model itself, for the in-graph tokenizer of the tf.data input path.
  shutil.copyfile(os.path.join(tmp, "spiece.model"), os.path.join(out, "spiece.model"))
  shutil.rmtree(tmp)


def build_dialogpt(shared: str) -> None:
  src = os.path.join(shared, "tokenizers", "microsoft-DialoGPT-small")
  out = os.path.join(ASSETS, "dialogpt")
  os.makedirs(out, exist_ok=True)
  for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
    shutil.copyfile(os.path.join(src, name), os.path.join(out, name))


def build_blenderbot_tiny(shared: str) -> None:
  from tokenizers import ByteLevelBPETokenizer

  train = os.path.join(shared, "datasets", "empathetic_dialogues", "train")
  with open(os.path.join(train, "contexts.json"), encoding="utf-8") as f:
    contexts = json.load(f)
  with open(os.path.join(train, "targets.json"), encoding="utf-8") as f:
    targets = json.load(f)
  texts = targets + [turn for context in contexts for turn in context]
  bpe = ByteLevelBPETokenizer(add_prefix_space=True)
  bpe.train_from_iterator(texts, vocab_size=BLENDERBOT_VOCAB, min_frequency=2,
                          special_tokens=["<pad>", "<s>", "</s>", "<unk>"])
  out = os.path.join(ASSETS, "blenderbot_tiny")
  os.makedirs(out, exist_ok=True)
  bpe.save_model(out)
  with open(os.path.join(out, "added_tokens.json"), "w") as f:
    json.dump({"<mask>": bpe.get_vocab_size()}, f)
  with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
    json.dump({"tokenizer_class": "BlenderbotTokenizer", "add_prefix_space": True,
               "model_max_length": BLENDERBOT_MAX_LENGTH, "bos_token": "<s>",
               "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
               "mask_token": "<mask>"}, f, indent=2)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--shared", default=os.path.join(os.getcwd(), "..", "shared"))
  args = parser.parse_args()
  build_godel(args.shared)
  build_dialogpt(args.shared)
  build_blenderbot_tiny(args.shared)


if __name__ == "__main__":
  main()
