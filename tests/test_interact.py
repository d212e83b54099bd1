"""`launch/interact.py` through a real pseudo-terminal: the instruction prompt, replies equal
transformers' greedy `generate` on the same weights and the same formatted history (two turns),
`<new>` forgets the history, `<quit>` exits cleanly."""

import os
import sys
import time

import pexpect
import pytest

import hf_fixtures as hf
from conftest import REPO

LAUNCHER = os.path.join(REPO, "launch", "interact.py")


def _torch_reply(model, fmt, history, instruction, max_new_tokens):
  import torch  # pylint: disable=import-outside-toplevel

  ids = torch.tensor([fmt.encode_context(history, instruction).ids])
  with torch.no_grad():
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                         num_beams=1, max_new_tokens=max_new_tokens)
  return fmt.decode(out[0, 1:].numpy()).strip()


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")
def test_a_chat_session(tmp_path):
  folder = str(tmp_path / "godel")
  model, _ = hf.save_torch_model("godel", folder)  # a 2+2-layer T5 in GODEL's format
  from empathy_jax.models.loading import load_model  # pylint: disable=import-outside-toplevel

  fmt = load_model(folder).fmt
  child = pexpect.spawn(sys.executable, [LAUNCHER, "--pretrained_model_dir", folder,
                                         "--max_new_tokens", "8", "--beam_width", "1",
                                         "--sample=false"],
                        cwd=REPO, encoding="utf-8", timeout=120)
  child.expect(r"Instruction \(Enter for the default: 'Given the dialog context, you need to "
               r"respond to respond empathetically\.'\): ")
  assert "INFO" not in child.before and "xla_bridge" not in child.before  # quiet by default
  child.sendline("Reply kindly.")
  child.expect(r"ready \(")
  child.expect("You: ")
  replies = []
  for message in ("I failed my driving test today.", "Thanks, I will try again."):
    start = time.perf_counter()
    child.sendline(message)
    child.expect(r"Bot: ([^\r\n]*)\r\n")
    waited = time.perf_counter() - start
    replies.append(child.match.group(1).strip())
    child.expect("You: ")
    assert waited < 30.0, waited  # the first bucket compiled before the prompt
  want_history = []
  for message, reply in zip(("I failed my driving test today.", "Thanks, I will try again."),
                            replies):
    want_history.append(message)
    assert reply == _torch_reply(model, fmt, want_history, "Reply kindly.", 8)
    want_history.append(reply)
  child.sendline("<new>")
  child.expect(r"\(new conversation\)")
  child.expect("You: ")
  child.sendline("I failed my driving test today.")
  child.expect(r"Bot: ([^\r\n]*)\r\n")
  assert child.match.group(1).strip() == replies[0]  # the history was forgotten
  child.expect("You: ")
  child.sendline("<quit>")
  child.expect(pexpect.EOF)
  child.close()
  assert child.exitstatus == 0
  assert all(replies)  # replies with words, compared above
