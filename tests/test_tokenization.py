import pytest

from empathy_jax.registry import get_model_spec
from empathy_jax.tokenization import (GODEL_DEFAULT_INSTRUCTION, load_hf_tokenizer, make_format)


def fmt_for(name, max_length=None):
  spec = get_model_spec(name)
  tok = load_hf_tokenizer(spec.tokenizer, spec.family)
  return make_format(spec.family, tok, max_length or spec.max_length)


def test_vocabularies_and_pad_ids_match_original_checkpoints():
  godel, gpt, bb = fmt_for("GODEL_TINY"), fmt_for("DialoGPT_TINY"), fmt_for("BlenderBot_TINY")
  assert (godel.vocab_size, godel.pad_id) == (32102, 32101)
  assert godel.tokenizer.convert_tokens_to_ids("EOS") == 32100
  assert (gpt.vocab_size, gpt.pad_id, gpt.eos_id) == (50258, 50257, 50256)
  assert (bb.vocab_size, bb.pad_id, bb.eos_id) == (8010, 8009, 2)
  assert bb.tokenizer.convert_tokens_to_ids("<mask>") == 8008


def test_godel_format_on_real_rows(ed_test):
  fmt = fmt_for("GODEL_TINY")
  tok = fmt.tokenizer
  for i in range(20):
    ctx, instr, know = ed_test.contexts[i], ed_test.instructions[i], ed_test.knowledge[i]
    enc = fmt.encode_context(ctx, instr, know)
    text = f"Instruction: {instr} [KNOWLEDGE] {know} [CONTEXT] {' EOS '.join(ctx)}"
    assert enc.ids == tok(text).input_ids and not enc.truncated
    assert enc.ids.count(32100) == len(ctx) - 1 and enc.ids[-1] == 1
    # Erased instruction and knowledge: the default instruction, verbatim, and no knowledge.
    default = fmt.encode_context(ctx, None, None)
    assert default.ids == tok(f"Instruction: {GODEL_DEFAULT_INSTRUCTION} [CONTEXT] "
                              f"{' EOS '.join(ctx)}").input_ids
    target = fmt.encode_target(ed_test.targets[i])
    assert target.ids[0] == 32101 and target.ids[-1] == 1
    assert tok.decode(target.ids[1:], skip_special_tokens=True) == tok.decode(
        tok(ed_test.targets[i]).input_ids, skip_special_tokens=True)
  assert GODEL_DEFAULT_INSTRUCTION == (
      "Given the dialog context, you need to respond to respond empathetically.")


def test_godel_left_truncation_keeps_instruction(ed_test):
  fmt = fmt_for("GODEL_TINY", max_length=64)
  tok = fmt.tokenizer
  ctx = ed_test.contexts[0] * 4
  enc = fmt.encode_context(ctx, "be kind", "some knowledge")
  assert enc.truncated and len(enc.ids) == 64
  prefix = tok("Instruction: be kind [CONTEXT] ").input_ids
  dialog = tok(" EOS ".join(ctx)).input_ids
  assert enc.ids == prefix + dialog[-(64 - len(prefix)):]
  assert prefix[-1] == 1  # the prefix's own </s> stays in the middle, as in the original


def test_dialogpt_format_on_real_rows(ed_test):
  fmt = fmt_for("DialoGPT_TINY")
  tok = fmt.tokenizer
  for i in range(20):
    ctx = ed_test.contexts[i]
    enc = fmt.encode_context(ctx, "ignored instruction", "ignored knowledge")
    assert enc.ids == tok(" <|endoftext|> ".join(ctx) + " <|endoftext|>").input_ids
    assert enc.ids.count(50256) == len(ctx) and enc.ids[-1] == 50256
    target = fmt.encode_target(ed_test.targets[i])
    assert target.ids == tok(ed_test.targets[i]).input_ids + [50256]
  short = make_format("dialogpt", tok, 16)
  long_ctx = ed_test.contexts[0]
  full = tok(" <|endoftext|> ".join(long_ctx) + " <|endoftext|>").input_ids
  cut = short.encode_context(long_ctx)
  assert cut.truncated and cut.ids == full[-16:]


def test_blenderbot_format_on_real_rows(ed_test):
  fmt = fmt_for("BlenderBot_TINY")
  tok = fmt.tokenizer
  for i in range(20):
    ctx = ed_test.contexts[i]
    enc = fmt.encode_context(ctx)
    full = tok("</s> <s>".join(ctx)).input_ids
    assert enc.ids == full[-128:] and enc.truncated == (len(full) > 128)
    assert enc.ids[-1] == 2 and enc.ids.count(1) >= len(ctx) - 1 - enc.truncated * len(ctx)
    target = fmt.encode_target(ed_test.targets[i])
    assert target.ids[0] == 1 and target.ids[-1] == 2
    assert tok.decode(target.ids, skip_special_tokens=True).strip() == ed_test.targets[i].strip()


def test_unknown_family_is_rejected():
  tok = load_hf_tokenizer("package:godel", "godel")
  with pytest.raises(ValueError, match="unknown model family"):
    make_format("llama", tok)
