import pytest

from empathy_jax.registry import get_model_spec
from empathy_jax.families import make_format
from empathy_jax.tokenization.families import GODEL_DEFAULT_INSTRUCTION
from empathy_jax.tokenization.loading import load_hf_tokenizer


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


TEXTS = ("Hello there, friend! <extra_id_3> x", "I'm sad.  My dog died\nyesterday", "ünïcödé 123")


def _auto(path, family):
  """What the loader gave before its direct-class path: AutoTokenizer plus our set-up."""
  from transformers import AutoTokenizer

  from empathy_jax.tokenization import loading
  tok = AutoTokenizer.from_pretrained(path)
  tok.add_special_tokens({"pad_token": loading.PAD_TOKEN})
  if family == "blenderbot":
    loading._ensure_eos_appended(tok)
  return tok


@pytest.mark.parametrize("name", ["GODEL_TINY", "DialoGPT_TINY", "BlenderBot_TINY"])
def test_direct_tokenizer_class_is_autotokenizers_choice(name, tmp_path):
  """The loader imports the family's tokenizer class itself (no torch import); on the shipped
  folder and on a saved model folder it must give AutoTokenizer's class and encodings."""
  import json

  from empathy_jax.tokenization import loading
  spec = get_model_spec(name)
  shipped = loading.resolve_source(spec.tokenizer)
  saved = tmp_path / "model"
  load_hf_tokenizer(spec.tokenizer, spec.family).save_pretrained(saved)
  model_type = {"godel": "t5", "dialogpt": "gpt2", "blenderbot": "blenderbot"}[spec.family]
  (saved / "config.json").write_text(json.dumps({"model_type": model_type}))
  for path in (shipped, str(saved)):
    assert loading._direct_class(path) is not None
    ours = loading._load_cached.__wrapped__(path, spec.family)
    theirs = _auto(path, spec.family)
    assert type(ours) is type(theirs)
    assert len(ours) == len(theirs) and ours.pad_token_id == theirs.pad_token_id
    for text in TEXTS:
      ids = ours(text).input_ids
      assert ids == theirs(text).input_ids
      assert ours.decode(ids) == theirs.decode(ids)
  # A folder whose model type names another family is left to AutoTokenizer.
  (saved / "config.json").write_text(json.dumps({"model_type": "bert"}))
  assert loading._direct_class(str(saved)) is None


def test_loading_a_packaged_tokenizer_does_not_import_torch():
  import subprocess
  import sys
  code = ("import sys; from empathy_jax.tokenization.loading import load_hf_tokenizer; "
          "[load_hf_tokenizer(s, f) for s, f in (('package:godel', 'godel'), "
          "('package:dialogpt', 'dialogpt'), ('package:blenderbot_tiny', 'blenderbot'))]; "
          "print('torch' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=900)
  assert out.stdout.strip() == "False", out.stderr[-2000:]
