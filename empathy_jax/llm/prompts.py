"""Prompts for an external LLM, in two styles:

- `original`: the original's `test_gpt3` prompt, character for character: the instruction and
  one newline, each turn `Speaker: `/`Listener: ` by its position from the first turn (even:
  speaker), then the label of the role after the last turn with a trailing space -- so a
  context of an even number of turns asks for the speaker's reply.
- `chat` (the default): the same instruction and a blank line, roles counted backwards from the
  last turn (always the speaker's, as EmpatheticDialogues' contexts end), then `Listener:` --
  the listener's reply is what is scored against the target.
"""

from __future__ import annotations

INSTRUCTION = ("The following is a conversation between two people. The speaker and listener "
               "are helpful, friendly, and empathetic.")
TEMPLATE = "{instruction}\n\n{dialogue}\n{next_role}:"
ROLES = ("Speaker", "Listener")
PROMPT_STYLES = ("chat", "original")


def original_prompt(context: list[str]) -> str:
  """The original's `test_gpt3.py` prompt for one context (its turns unstripped, as it sends
  them)."""
  prompt = INSTRUCTION + "\n"
  for j, turn in enumerate(context):
    prompt += f"{ROLES[j % 2]}: {turn}\n"
  return prompt + f"{ROLES[len(context) % 2]}: "


def dialogue_lines(context: list[str]) -> list[str]:
  """Each turn with its role; roles alternate backwards from the speaker's last turn."""
  n = len(context)
  return [f"{ROLES[(n - 1 - i) % 2]}: {turn.strip()}" for i, turn in enumerate(context)]


def build_prompt(context: list[str], template: str = TEMPLATE) -> str:
  """`template` may use {instruction}, {dialogue} and {next_role} (the listener)."""
  return template.format(instruction=INSTRUCTION, dialogue="\n".join(dialogue_lines(context)),
                         next_role=ROLES[1])


def check_template(template: str) -> None:
  try:
    build_prompt(["hello"], template)
  except (KeyError, IndexError, ValueError) as e:
    raise ValueError(f"--prompt_template may use only {{instruction}}, {{dialogue}} and "
                     f"{{next_role}} (and {{{{ }}}} for literal braces): {e!r}") from e
  if "{dialogue}" not in template:
    raise ValueError("--prompt_template must contain {dialogue}")


def clean_response(text: str) -> str:
  """The reply up to the next turn the model wrote for the other role, one line."""
  for role in ROLES:
    cut = text.find(f"\n{role}:")
    if cut >= 0:
      text = text[:cut]
  return " ".join(text.split())
