"""Random classifiers in the published formats, for tests and benchmarks (needs torch):
transformers sequence-classifier folders with `training_args.bin`, and EPITOME bi-encoder state
dicts with the published key names. `size="base"` gives RoBERTa-base dimensions."""

import argparse
import collections
import json
import os

import numpy as np

TINY_ENCODER = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=256, max_position_embeddings=130)
BASE_ENCODER = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                    intermediate_size=3072, max_position_embeddings=514)
SIZES = {"tiny": TINY_ENCODER, "base": BASE_ENCODER}


def _bert_vocab(texts, size=800):
  counts = collections.Counter(w for t in texts for w in t.lower().replace(".", " . ").split())
  words = [w for w, _ in counts.most_common(size)]
  return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words


def save_classifier(directory, model_type, num_labels, texts, max_seq_length=32, seed=0,
                    size="tiny"):
  import torch
  import transformers

  from empathy_jax.tokenization.loading import resolve_source

  torch.manual_seed(seed)
  os.makedirs(directory, exist_ok=True)
  if model_type == "roberta":
    tok = transformers.AutoTokenizer.from_pretrained(resolve_source("package:roberta"))
    config = transformers.RobertaConfig(vocab_size=len(tok), num_labels=num_labels,
                                        pad_token_id=1, **SIZES[size])
    model = transformers.RobertaForSequenceClassification(config)
  else:
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
      f.write("\n".join(_bert_vocab(texts)))
    tok = transformers.BertTokenizer(os.path.join(directory, "vocab.txt"))
    config = transformers.BertConfig(vocab_size=len(tok), num_labels=num_labels, **SIZES[size])
    model = transformers.BertForSequenceClassification(config)
  model.eval()
  model.save_pretrained(directory)
  tok.save_pretrained(directory)
  args = argparse.Namespace(model_type=model_type, max_seq_length=max_seq_length,
                            model_name_or_path="roberta-base" if model_type == "roberta"
                            else "bert-base-uncased")
  torch.save(args, os.path.join(directory, "training_args.bin"))
  return model, tok


def torch_epitome_class(size="tiny"):
  import torch
  import transformers
  from torch import nn

  class MultiHeadAttention(nn.Module):
    def __init__(self, d):
      super().__init__()
      self.q_linear, self.k_linear = nn.Linear(d, d), nn.Linear(d, d)
      self.v_linear, self.out = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, q, k, v, k_mask=None):
      scores = self.q_linear(q) @ self.k_linear(k).transpose(-2, -1) / np.sqrt(q.shape[-1])
      if k_mask is not None:  # padded seekers (batched); the original sees none, one at a time
        scores = scores.masked_fill(k_mask[:, None, :] == 0, float("-inf"))
      return self.out(torch.softmax(scores, -1) @ self.v_linear(v))

  class Head(nn.Module):
    def __init__(self, d):
      super().__init__()
      self.dense, self.out_proj = nn.Linear(d, d), nn.Linear(d, 3)

    def forward(self, x):
      return self.out_proj(torch.relu(self.dense(x)))

  class BiEncoder(nn.Module):
    """EPITOME's BiEncoderAttentionWithRationaleClassification layout (eval mode)."""

    def __init__(self):
      super().__init__()
      cfg = transformers.RobertaConfig(vocab_size=50265, pad_token_id=1, **SIZES[size])
      self.seeker_encoder = transformers.RobertaForMaskedLM(cfg)
      self.responder_encoder = transformers.RobertaForMaskedLM(cfg)
      d = cfg.hidden_size
      self.attn = MultiHeadAttention(d)
      self.empathy_classifier = Head(d)
      self.rationale_classifier = nn.Linear(d, 2)

    def forward(self, s_ids, s_mask, r_ids, r_mask):
      s = self.seeker_encoder.roberta(s_ids, attention_mask=s_mask)[0]
      r = self.responder_encoder.roberta(r_ids, attention_mask=r_mask)[0]
      r = r + self.attn(r, s, s, s_mask)
      return self.empathy_classifier(r[:, 0])

  return BiEncoder


def save_epitome(directory, seed=0, size="tiny"):
  import torch

  os.makedirs(directory, exist_ok=True)
  models = {}
  for i, mech in enumerate(("IP", "EX", "ER")):
    torch.manual_seed(seed + i)
    model = torch_epitome_class(size)().eval()
    torch.save(model.state_dict(), os.path.join(directory, f"finetuned_{mech}.pth"))
    models[mech] = model
  return models


def write_json(path, value):
  with open(path, "w") as f:
    json.dump(value, f)
