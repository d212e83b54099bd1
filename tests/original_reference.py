"""Independent fidelity reference transcribed from the ORIGINAL PyTorch project
"automating-empathy-project" (tarushbansal), git mirror HEAD (commit 2dc2306).

Everything here is transcribed from the original's source only:

    src/base_classes.py            HuggingFaceTokenizerBase.__init__ (l.105-114)
    src/custom_tokenizers.py       BlenderBot/GODEL/DialoGPT tokenizers (l.14-112)
    src/data_loader.py             pad_to_tensor (l.206-222)
    src/reward_data_loader.py      RewardDataset.__getitem__ (l.36-47), collate_fn (l.116-126)
    src/dialogue_models.py         BlenderBot/GODEL/DialoGPT .forward (l.30-45, 73-91, 119-129)
    src/reward_model_supervisor.py RewardModelSupervisor.forward (l.51-72)
    src/test_gpt3.py               argparse defaults (l.30-32), prompt/request/entry (l.75-101)

It is a plain module (no tests).  Nothing here "fixes" the original.
"""

from typing import List, Optional, Union

import torch

# Exact default instruction of GODELTokenizer (custom_tokenizers.py l.52).
# NB: the duplicated "respond to respond" is in the original string.
GODEL_DEFAULT_INSTRUCTION = (
    "Given the dialog context, you need to respond to respond empathetically."
)

# test_gpt3.py l.75 (note the trailing "\n")
GPT3_PREFIX = (
    "The following is a conversation between two people. The speaker and "
    "listener are helpful, friendly, and empathetic.\n"
)

_FAMILIES = ("godel", "dialogpt", "blenderbot")


# --------------------------------------------------------------------------
# 1. Tokenizer preparation + encode_text
# --------------------------------------------------------------------------


def prepare_tokenizer(tokenizer) -> int:
    """Prepare a fresh HF tokenizer exactly as the original does; return PAD_IDX.

    Transcribes base_classes.py l.106-113 (HuggingFaceTokenizerBase.__init__)::

        self.tokenizer.add_special_tokens({"pad_token": "<PAD>"})
        self.SOS_IDX = self.tokenizer.bos_token_id
        self.PAD_IDX = self.tokenizer.pad_token_id
        self.EOS_IDX = self.tokenizer.eos_token_id
        self.vocab_size = len(self.tokenizer)

    followed by the family constructors (custom_tokenizers.py l.17, l.51, l.93)::

        self.tokenizer.truncation_side = "left"

    Notes:
    - "<PAD>" is ALWAYS added, even for T5/GODEL whose native pad is "<pad>"
      (id 0): the pad token is replaced by a brand-new token whose id is
      len(old vocab) (e.g. GODEL, DialoGPT and BlenderBot all get a new id),
      so the models are resized with `resize_token_embeddings(len(tokenizer))`
      (dialogue_models.py l.24, 66, 112).  Native "<pad>" id 0 is NOT PAD_IDX.
    - base_classes.py l.114 also sets os.environ["TOKENIZERS_PARALLELISM"]
      = "false"; that does not affect token ids and is not reproduced here.
    """
    # base_classes.py l.109
    tokenizer.add_special_tokens({"pad_token": "<PAD>"})
    # custom_tokenizers.py l.17 / l.51 / l.93 (same for all three families)
    tokenizer.truncation_side = "left"
    # base_classes.py l.111
    return tokenizer.pad_token_id


def encode_text(
    tokenizer,
    family: str,
    text: Union[str, List[str]],
    instruction: Optional[str] = None,
    knowledge: Optional[str] = None,
) -> List[int]:
    """The original's `encode_text` for family in {"godel","dialogpt","blenderbot"}.

    Transcribes custom_tokenizers.py:
      BlenderBotTokenizer.encode_text  l.19-37
      GODELTokenizer.encode_text       l.54-85
      DialoGPTTokenizer.encode_text    l.95-112

    `tokenizer` must already be prepared by `prepare_tokenizer` ("<PAD>" pad
    token, truncation_side="left").  A *list* (exact `type(text) == list`
    check) is a dialogue context; anything else is a single response string.
    BlenderBot and DialoGPT ignore instruction/knowledge (`*_` in the
    original signature).
    """
    if family not in _FAMILIES:
        raise ValueError(f"unknown family {family!r}")

    # The original uses `type(text) == list` (not isinstance): a tuple would
    # go down the *response* branch.
    is_context = type(text) == list  # noqa: E721

    if family == "blenderbot":
        if is_context:
            # l.26: utterances glued with "</s> <s>" -- no space before "</s>",
            # one space before "<s>", nothing before the first utterance.
            dialogue = "</s> <s>".join(text)
            # l.27-31: tokenizer truncation, LEFT side (oldest tokens dropped),
            # special tokens (trailing </s>) added after truncation, total
            # length <= model_max_length (128 for blenderbot-400M-distill).
            token_ids = tokenizer(
                dialogue,
                truncation=True,
                max_length=tokenizer.model_max_length,
            )["input_ids"]
        else:
            # l.34: response prefixed with literal "<s> " (bos), tokenizer
            # appends "</s>".
            token_ids = tokenizer(f"<s> {text}")["input_ids"]
            # l.35: plain python slice -> keeps the FIRST model_max_length ids
            # (right-side cut, may drop the trailing </s>).
            token_ids = token_ids[: tokenizer.model_max_length]
        return token_ids

    if family == "godel":
        if is_context:
            # l.62-63: default instruction only when instruction is None
            # ("" is kept as "Instruction: ").
            if instruction is None:
                instruction = GODEL_DEFAULT_INSTRUCTION
            # l.64
            instruction = f"Instruction: {instruction}"
            # l.65: knowledge None -> "" (which leaves TWO spaces between the
            # instruction and "[CONTEXT]" in the string below).
            knowledge = f"[KNOWLEDGE] {knowledge}" if knowledge is not None else ""
            # l.66: utterances joined with literal " EOS " (the word, not </s>)
            dialogue = f" EOS ".join(text)
            # l.67-68: whole string, stripped, tokenized WITHOUT truncation
            # (T5 tokenizer appends </s>).
            token_ids = tokenizer(
                f"{instruction} {knowledge} [CONTEXT] {dialogue}".strip()
            )["input_ids"]
            # l.69: strictly greater than model_max_length triggers fallback
            if len(token_ids) > tokenizer.model_max_length:
                # l.70-71: fallback prefix DROPS the knowledge entirely, has a
                # trailing space, and is tokenized with special tokens, so it
                # ends with its own </s> in the middle of the sequence.
                token_ids = tokenizer(f"{instruction} [CONTEXT] ")["input_ids"]
                # l.72-78: dialogue alone, LEFT-truncated (truncation_side) to
                # the remaining budget (which includes its own trailing </s>).
                token_ids.extend(
                    tokenizer(
                        dialogue,
                        truncation=True,
                        max_length=tokenizer.model_max_length - len(token_ids),
                    )["input_ids"]
                )
        else:
            # l.81-82: response prefixed with the PAD token string ("<PAD>")
            # and a space; its first id is therefore PAD_IDX (used as the
            # decoder start token). Tokenizer appends </s>.
            token_ids = tokenizer(f"{tokenizer.pad_token} {text}")["input_ids"]
            # l.83: keep first model_max_length ids (right-side cut)
            token_ids = token_ids[: tokenizer.model_max_length]
        return token_ids

    # family == "dialogpt"
    if is_context:
        # l.102: " <eos> ".join(utts) + " <eos>", i.e. a space on BOTH sides of
        # each eos between utterances and a space before the final eos.
        eos = tokenizer.eos_token
        input_ = f"{f' {eos} '.join(text)} {eos}"
        # l.103-107: LEFT truncation to model_max_length (1024 for DialoGPT);
        # GPT-2 tokenizer adds no special tokens itself.
        token_ids = tokenizer(
            input_,
            truncation=True,
            max_length=tokenizer.model_max_length,
        )["input_ids"]
    else:
        # l.109: plain tokenization (no leading space added) + eos id appended
        token_ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
        # l.110: keep first model_max_length ids (right-side cut)
        token_ids = token_ids[: tokenizer.model_max_length]
    return token_ids


# --------------------------------------------------------------------------
# 2. Reward collate
# --------------------------------------------------------------------------


def pad_to_tensor(
    sequences: List[List[int]],
    pad_token: int,
    padding_side: str = "right",
    dtype: torch.dtype = torch.long,
):
    """Transcribes data_loader.py l.206-222 (pad_to_tensor) verbatim.

    The mask is computed AFTER padding as `tensor != pad_token` (a BoolTensor),
    so ANY real token equal to pad_token (e.g. GODEL's "<PAD>" start token at
    position 0 of every response) is masked out too.
    """
    max_len = max([len(seq) for seq in sequences])
    if padding_side == "right":
        sequences = [seq + [pad_token] * (max_len - len(seq)) for seq in sequences]
    elif padding_side == "left":
        sequences = [[pad_token] * (max_len - len(seq)) + seq for seq in sequences]

    tensor = torch.tensor(sequences, dtype=dtype)
    mask = tensor != pad_token  # torch.bool
    return tensor, mask


def reward_collate(context_ids: List[int], response_ids_list: List[List[int]], pad_idx: int):
    """Transcribes reward_data_loader.py l.116-126 (collate_fn) + pad_to_tensor.

    One context, N candidate responses (DataLoader batch_size=1, collate on
    x[0], l.101-103).  Returns (contexts, context_mask, targets, target_mask):

    - contexts:     torch.int64 [N, Lc], the SAME context row repeated N times
                    (`torch.LongTensor([data.context for _ in ...])`, l.117)
    - context_mask: torch.int64 ones [N, Lc] (`torch.ones_like(contexts)`,
                    l.118) -- int64, NOT bool, and never derived from PAD_IDX
    - targets:      torch.int64 [N, Lt], responses RIGHT-padded with pad_idx
                    (pad_to_tensor default padding_side="right", l.119)
    - target_mask:  torch.bool [N, Lt], `targets != pad_idx`

    NOTE (original as written at HEAD): RewardDataset.__getitem__ (l.37, l.40)
    does `self.tokenizer.encode_text(...)[0]`, a leftover from when encode_text
    returned a tuple (token_ids, concept_net_data) (see commit a3f1626^).  At
    HEAD encode_text returns List[int], so `[0]` would yield only the first
    token id and collate_fn would then fail in pad_to_tensor (len() of an int).
    This reference takes the intended full id lists, i.e. context_ids =
    encode_text(context) (no instruction/knowledge passed -> GODEL default
    instruction) and response_ids_list = [encode_text(r) for r in responses].
    """
    # l.117
    contexts = torch.LongTensor([context_ids for _ in range(len(response_ids_list))])
    # l.118
    context_mask = torch.ones_like(contexts)
    # l.119
    targets, target_mask = pad_to_tensor(response_ids_list, pad_idx)
    return contexts, context_mask, targets, target_mask


# --------------------------------------------------------------------------
# 3. Reward forward
# --------------------------------------------------------------------------


def reward_forward(
    hf_model,
    family: str,
    linear_weight: torch.Tensor,
    linear_bias: torch.Tensor,
    mean_offset,
    contexts: torch.Tensor,
    context_mask: torch.Tensor,
    targets: torch.Tensor,
    target_mask: torch.Tensor,
) -> torch.Tensor:
    """RewardModelSupervisor.forward in eval mode -> rewards [N].

    Transcribes reward_model_supervisor.py l.51-72, with the family wrapper
    forwards inlined:
      GODEL.forward      dialogue_models.py l.73-91  (encoder-decoder, mutates mask)
      BlenderBot.forward dialogue_models.py l.30-45  (encoder-decoder)
      DialoGPT.forward   dialogue_models.py l.119-129 (decoder-only)

    IMPORTANT: for "godel" this MUTATES the caller's `target_mask` in place
    (`target_mask[:, 0] = 1`, dialogue_models.py l.82), exactly like the
    original mutates `batch.target_mask`; the mutated mask is then used both
    as decoder_attention_mask AND for the mean-pooling in the supervisor
    (l.66-68), so the decoder position 0 (the "<PAD>" start token, which
    pad_to_tensor had masked out) is included in the mean and counted in the
    denominator.

    Eval mode: self.dropout (nn.Dropout(0.6), l.46) is identity and
    `rewards -= self.mean_offset` (l.70-71) is applied.  mean_offset is 0 by
    default (l.47) or `sum_rewards / num` loaded from a checkpoint (l.147).
    """
    if family not in _FAMILIES:
        raise ValueError(f"unknown family {family!r}")
    # Original runs with the whole LightningModule in eval mode (dropout off
    # inside the HF model as well).
    hf_model.eval()

    with torch.no_grad():
        if family in ("godel", "blenderbot"):  # model.has_encoder == True
            if family == "godel":
                # dialogue_models.py l.81-82: "Unmask pad token used to start
                # generation" -- IN PLACE on the batch's mask (bool -> True).
                target_mask[:, 0] = 1
            # dialogue_models.py l.38-44 / l.84-90: targets are passed as
            # decoder_input_ids UNSHIFTED (no labels, no shift_right).
            output = hf_model(
                input_ids=contexts,
                attention_mask=context_mask,
                decoder_input_ids=targets,
                decoder_attention_mask=target_mask,
                output_hidden_states=True,
            )
            # reward_model_supervisor.py l.59: last decoder hidden state
            last_hidden_states = output.decoder_hidden_states[-1]
        else:  # dialogpt, model.has_encoder == False
            # reward_model_supervisor.py l.61-64: context and response are
            # concatenated along time; mask = cat(int64 ones, bool) which torch
            # type-promotes to int64.  No position_ids are passed.
            output = hf_model(
                input_ids=torch.cat((contexts, targets), dim=1),
                attention_mask=torch.cat((context_mask, target_mask), dim=1),
                output_hidden_states=True,
            )
            # l.65: keep only the response positions (drop first Lc positions)
            last_hidden_states = output.hidden_states[-1][:, contexts.size(dim=1):, :]

        # l.66-68: masked mean over response positions using (the possibly
        # mutated) target_mask; denominator = number of True positions.
        dialogue_hidden_state = torch.sum(
            last_hidden_states * target_mask.unsqueeze(-1), dim=1
        ) / torch.sum(target_mask, dim=1).unsqueeze(-1)

        # l.69: linear(dropout(h)).squeeze(-1); dropout is identity in eval.
        # nn.Linear(hidden_size, 1): y = h @ W.T + b, W [1, D], b [1].
        rewards = torch.nn.functional.linear(
            dialogue_hidden_state, linear_weight, linear_bias
        ).squeeze(-1)

        # l.70-71: only when not training
        rewards -= mean_offset
    return rewards


# --------------------------------------------------------------------------
# 4. GPT-3 baseline (test_gpt3.py)
# --------------------------------------------------------------------------


def gpt3_prompt(context: List[str]) -> str:
    """Prompt built for one test context; transcribes test_gpt3.py l.75-83.

    Even-indexed utterances (0, 2, ...) are "Speaker", odd ones "Listener";
    each line ends with "\\n".  The prompt ends with the NEXT role label and a
    trailing space and no newline: "Speaker: " if len(context) is even, else
    "Listener: ".
    """
    prompt = GPT3_PREFIX  # l.75, l.77
    for j, utt in enumerate(context):  # l.78
        if j % 2 == 0:
            prompt += f"Speaker: {utt}\n"  # l.80
        else:
            prompt += f"Listener: {utt}\n"  # l.82
    prompt += "Speaker: " if len(context) % 2 == 0 else "Listener: "  # l.83
    return prompt


def gpt3_request(prompt: str, temperature: float = 0.5, max_tokens: int = 256,
                 top_p: float = 1.0) -> dict:
    """kwargs passed to openai.Completion.create; test_gpt3.py l.85-92.

    Defaults are the argparse defaults (l.30-32): --max_tokens 256,
    --temperature 0.5, --top_p 1.0.  suffix is the literal "\\n".
    (l.43-44 only print a warning when temperature < 1 and top_p < 1.)
    """
    return dict(
        engine="text-davinci-003",
        prompt=prompt,
        suffix="\n",
        temperature=temperature,
        max_tokens=max_tokens,
        top_p=top_p,
    )


def gpt3_test_entry(i: int, prompt: str, context: List[str], target: str, output: str) -> dict:
    """Row appended to test_data; test_gpt3.py l.94-101.

    `output` is response['choices'][0]['text'] used raw (no strip).  Keys in
    this order: id, input (the full prompt), context, target, output.
    test_data is later sorted by "id" before the final dump (l.117).
    """
    return {
        "id": i,
        "input": prompt,
        "context": context,
        "target": target,
        "output": output,
    }
