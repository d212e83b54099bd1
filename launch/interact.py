#!/usr/bin/env python
"""Chat with a dialogue model in the terminal, as the original's `interact`.

  python launch/interact.py --model GODEL_TINY
  python launch/interact.py --pretrained_model_dir runs/ppo/tensorboard_logs/version_0 --sample \\
      --top_p 0.9

GODEL models ask for an instruction first (Enter keeps the default; --instruction gives it).
Type a message and press Enter; `<new>` starts a new conversation, `<quit>` (or Ctrl-D) exits.
Generation flags as test.py (left out: the checkpoint's generation_config). The history is
formatted and truncated as the model's family does for training.
"""

import sys
import time

from absl import app, flags

from empathy_jax import launch_flags
from empathy_jax.chat import Responder
from empathy_jax.errors import CheckpointError
from empathy_jax.models.loading import load_model
from empathy_jax.tokenization.families import GODEL_DEFAULT_INSTRUCTION

F = flags
launch_flags.define_model_flags()
_INSTRUCTION = F.DEFINE_string("instruction", None, "GODEL's instruction (default: asked).")
_SEED = F.DEFINE_integer("seed", 0, "Sampling seed.")
_GENERATION = launch_flags.define_generation_flags()
_CACHE = launch_flags.define_compilation_cache_flag()
_TRUST = launch_flags.define_trust_pickle_flag()
launch_flags.list_in_help()


def ask(prompt: str) -> str | None:
  try:
    return input(prompt)
  except EOFError:
    return None


def main(argv):
  del argv
  launch_flags.quiet_libraries()
  _CACHE()
  source = launch_flags.required_model_source()
  try:
    loaded = load_model(source, trust_pickle=_TRUST.value)
  except (CheckpointError, ValueError) as e:
    launch_flags.fail(str(e))
  instruction = _INSTRUCTION.value
  if instruction is None and loaded.fmt.family == "godel":
    instruction = ask(f"Instruction (Enter for the default: {GODEL_DEFAULT_INSTRUCTION!r}): ")
    if instruction is None:
      return
  responder = Responder(loaded, _GENERATION(),
                        seed=_SEED.value, instruction=instruction or None)
  start = time.perf_counter()
  responder.reply([["Hello."]])  # compiles the first length bucket before the first prompt
  print(f"ready ({time.perf_counter() - start:.1f} s). <new> starts over, <quit> exits.",
        flush=True)
  history: list[str] = []
  while True:
    text = ask("You: ")
    if text is None or text.strip() == "<quit>":
      break
    if text.strip() == "<new>":
      history = []
      print("(new conversation)", flush=True)
      continue
    if not text.strip():
      continue
    history.append(text.strip())
    reply = responder.reply([history])[0]
    history.append(reply)
    print(f"Bot: {reply}", flush=True)
  print(file=sys.stderr)


if __name__ == "__main__":
  app.run(main)
