"""The original's input formats for the three model families, token for token.

Each family turns (context turns, instruction, knowledge) into encoder or prompt ids and a target
text into target ids, truncating from the left as the original does and reporting truncation.

- GODEL: `Instruction: {instruction} {[KNOWLEDGE] knowledge} [CONTEXT] {turns joined by ' EOS '}`;
  when too long, the tokens of `Instruction: {instruction} [CONTEXT] ` followed by the dialogue's
  tokens cut from the left (knowledge dropped; the first part keeps its `</s>`, as the original).
  Target `<PAD> {text}`: the pad token starts the decoder.
- DialoGPT: turns joined by ` {eos} ` plus a final ` {eos}`, cut from the left; target text + eos.
- BlenderBot: turns joined by `</s> <s>`, cut from the left; target `<s> {text}`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Sequence

GODEL_DEFAULT_INSTRUCTION = (
    "Given the dialog context, you need to respond to respond empathetically.")


@dataclasses.dataclass(frozen=True)
class Encoded:
  ids: list[int]
  truncated: bool


class DialogueFormat(abc.ABC):
  """A model family's tokenizer wrapper; `tokenizer` is a transformers tokenizer with `<PAD>`."""

  family: str
  is_encoder_decoder: bool

  def __init__(self, tokenizer, max_length: int):
    self.tokenizer = tokenizer
    self.max_length = int(max_length)

  @property
  def pad_id(self) -> int:
    return self.tokenizer.pad_token_id

  @property
  def eos_id(self) -> int:
    return self.tokenizer.eos_token_id

  @property
  def vocab_size(self) -> int:
    return len(self.tokenizer)

  def _ids(self, texts: Sequence[str]) -> list[list[int]]:
    return self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]

  def _left_cut(self, ids: list[int], limit: int | None = None) -> Encoded:
    limit = self.max_length if limit is None else limit
    if len(ids) <= limit:
      return Encoded(ids, False)
    return Encoded(ids[len(ids) - limit:], True)

  @abc.abstractmethod
  def context_texts(self, contexts, instructions, knowledge) -> list[str]:
    """The strings the original tokenizes for each context."""

  def encode_contexts(self, contexts: Sequence[Sequence[str]],
                      instructions: Sequence[str | None] | None = None,
                      knowledge: Sequence[str | None] | None = None) -> list[Encoded]:
    n = len(contexts)
    instructions = list(instructions) if instructions is not None else [None] * n
    knowledge = list(knowledge) if knowledge is not None else [None] * n
    texts = self.context_texts(contexts, instructions, knowledge)
    return [self._left_cut(ids) for ids in self._ids(texts)]

  def fit_contexts(self, contexts: list[Encoded], targets: list[Encoded]) -> list[Encoded]:
    """Decoder-only models read context + target as one sequence within `max_length`
    positions: each context too long for its target loses tokens from the left."""
    if self.is_encoder_decoder:
      return contexts
    return [self._left_cut(c.ids, self.max_length - len(t.ids))
            if len(c.ids) + len(t.ids) > self.max_length else c
            for c, t in zip(contexts, targets)]

  @abc.abstractmethod
  def encode_targets(self, targets: Sequence[str]) -> list[Encoded]:
    """Target ids as the original trains on them."""

  def encode_context(self, context, instruction=None, knowledge=None) -> Encoded:
    return self.encode_contexts([context], [instruction], [knowledge])[0]

  def encode_target(self, text: str) -> Encoded:
    return self.encode_targets([text])[0]

  def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
    return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)


class GodelFormat(DialogueFormat):
  family = "godel"
  is_encoder_decoder = True
  separator = " EOS "

  def context_texts(self, contexts, instructions, knowledge):
    texts = []
    for turns, instruction, know in zip(contexts, instructions, knowledge):
      instruction = instruction or GODEL_DEFAULT_INSTRUCTION
      know = f"[KNOWLEDGE] {know}" if know else ""
      dialog = self.separator.join(turns)
      texts.append(f"Instruction: {instruction} {know} [CONTEXT] {dialog}".strip())
    return texts

  def encode_contexts(self, contexts, instructions=None, knowledge=None):
    n = len(contexts)
    instructions = list(instructions) if instructions is not None else [None] * n
    knowledge = list(knowledge) if knowledge is not None else [None] * n
    texts = self.context_texts(contexts, instructions, knowledge)
    out = []
    for i, ids in enumerate(self._ids(texts)):
      if len(ids) <= self.max_length:
        out.append(Encoded(ids, False))
        continue
      # The original re-encodes the instruction and dialogue separately and keeps the
      # dialogue's last tokens; the prefix's own `</s>` stays in the middle.
      instruction = instructions[i] or GODEL_DEFAULT_INSTRUCTION
      prefix, dialog = self._ids([f"Instruction: {instruction} [CONTEXT] ",
                                  self.separator.join(contexts[i])])
      room = self.max_length - len(prefix)
      if room <= 0:
        raise ValueError(f"instruction of example {i} alone is {len(prefix)} tokens, more than "
                         f"max_length {self.max_length}")
      out.append(Encoded(prefix + dialog[len(dialog) - room:] if len(dialog) > room
                         else prefix + dialog, True))
    return out

  def encode_targets(self, targets):
    pad = self.tokenizer.pad_token
    encoded = self._ids([f"{pad} {t}" for t in targets])
    return [Encoded(ids[:self.max_length], len(ids) > self.max_length) for ids in encoded]


class DialoGPTFormat(DialogueFormat):
  family = "dialogpt"
  is_encoder_decoder = False

  def context_texts(self, contexts, instructions, knowledge):
    eos = self.tokenizer.eos_token
    return [f" {eos} ".join(turns) + f" {eos}" for turns in contexts]

  def encode_targets(self, targets):
    out = []
    for ids in self._ids(targets):
      ids = ids + [self.eos_id]
      out.append(Encoded(ids[:self.max_length], len(ids) > self.max_length))
    return out


class BlenderBotFormat(DialogueFormat):
  family = "blenderbot"
  is_encoder_decoder = True

  def context_texts(self, contexts, instructions, knowledge):
    return ["</s> <s>".join(turns) for turns in contexts]

  def encode_targets(self, targets):
    encoded = self._ids([f"<s> {t}" for t in targets])
    return [Encoded(ids[:self.max_length], len(ids) > self.max_length) for ids in encoded]
