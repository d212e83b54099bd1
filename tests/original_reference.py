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


def encoder_decoder_forward(hf_model, contexts, context_mask, targets, target_mask, godel):
    """GODEL.forward / BlenderBot.forward (dialogue_models.py l.73-91 / l.30-45).

    GODEL first "unmasks pad token used to start generation" (l.81-82): IN
    PLACE on the caller's mask (bool -> True), as the original does on
    `batch.target_mask`. Both pass the targets as decoder_input_ids UNSHIFTED
    (no labels, no shift_right; l.38-44 / l.84-90) and ask for hidden states.
    """
    if godel:
        target_mask[:, 0] = 1
    return hf_model(
        input_ids=contexts,
        attention_mask=context_mask,
        decoder_input_ids=targets,
        decoder_attention_mask=target_mask,
        output_hidden_states=True,
    )


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
            output = encoder_decoder_forward(hf_model, contexts, context_mask, targets,
                                             target_mask, godel=family == "godel")
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


# --------------------------------------------------------------------------
# 5. RLHF / PPO optimisation step (encoder-decoder policy, GODEL = T5)
# --------------------------------------------------------------------------
#
# Transcribed from the original's
#   src/rlhf_supervisor.py          RLHFSupervisor._log_probs (l.64-73),
#                                   _compute_rewards (l.75-87),
#                                   _estimate_advantages_and_returns (l.89-113),
#                                   _forward_and_log_metrics OPTIMIZATION PHASE
#                                   (l.158-217), configure_optimizers (l.235-245)
#   src/dialogue_model_supervisor.py DialogueModelSupervisor.forward (l.75-103)
#   src/dialogue_models.py           GODEL.forward (l.73-91)
#   src/data_classes.py              PPOConfig (l.114-129)
#   src/train_rlhf_pipeline.py       CLI defaults (l.32-50), Trainer (l.138-147)
#
# Optimiser used by the original (rlhf_supervisor.py l.235-245, identical to
# dialogue_model_supervisor.py l.242-252), torch==1.13.1 / pytorch_lightning==1.9.2
# / transformers==4.26.1 (requirements.txt):
#
#   torch.optim.AdamW(self.parameters(), lr=self.initial_lr)
#     -> all other arguments are torch defaults:
#        betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False
#     self.parameters() is the WHOLE RLHFSupervisor: ref_model, reward_model,
#     tuned_model, value_head.  ref_model / reward_model have
#     requires_grad=False (l.50-53) so their .grad stays None and AdamW skips
#     them entirely (no weight decay either); effectively the optimiser runs
#     over tuned_model + value_head, with decoupled weight decay 0.01 applied to
#     ALL of them (biases and layer norms included: no param groups).
#   get_linear_schedule_with_warmup(optimizer, num_warmup_steps=0,
#                                   num_training_steps=self.trainer.max_epochs)
#     stepped with {"interval": "epoch"} -> see linear_epoch_lr below.
#   Trainer (train_rlhf_pipeline.py l.138-147): no gradient clipping, no
#   gradient accumulation, full fp32 precision; defaults --initial_lr 1e-5,
#   --max_epochs 10, --clip_epsilon 0.2, --kl_penalty 0, --gamma 0.99,
#   --lam 0.95, --vf_coeff 1.0, --entropy_coeff 0.01 (l.32-50).
#   Lightning 1.9 automatic optimisation: closure = training_step, zero_grad,
#   backward; then optimizer.step().  Starting from zero grads this equals
#   backward(); step(); zero_grad() as done below.

ORIGINAL_ADAMW_KWARGS = dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01, amsgrad=False)


def linear_epoch_lr(initial_lr, epoch, max_epochs):
    """Learning rate during 0-based epoch `epoch` (rlhf_supervisor.py l.240-245).

    transformers' get_linear_schedule_with_warmup builds a LambdaLR with
        lr_lambda(step) = step / max(1, warmup)                    if step < warmup
                        = max(0, (N - step) / max(1, N - warmup))  otherwise
    with warmup = 0 and N = trainer.max_epochs.  LambdaLR applies
    lr_lambda(0) = 1 at construction and Lightning calls scheduler.step()
    once at the end of every training epoch ("interval": "epoch"), so during
    epoch e the scheduler's step counter is e:
        lr = initial_lr * max(0, (max_epochs - e) / max(1, max_epochs)).
    (Epoch 0 trains at the full initial_lr; the last epoch, e = max_epochs-1,
    at initial_lr / max_epochs; lr never reaches 0 during training.)
    """
    num_warmup_steps = 0
    num_training_steps = max_epochs
    current_step = epoch
    if current_step < num_warmup_steps:
        factor = float(current_step) / float(max(1, num_warmup_steps))
    else:
        factor = max(
            0.0,
            float(num_training_steps - current_step)
            / float(max(1, num_training_steps - num_warmup_steps)),
        )
    return initial_lr * factor


def ppo_step_reference(tuned_model, ref_model, value_head, optimizer, contexts, context_mask,
                       enc_outputs, pad_idx, scores, *, kl_penalty, gamma, lam, clip_epsilon,
                       vf_coeff, entropy_coeff, dropout_p=0.0):
    """tuned_model / ref_model: transformers T5ForConditionalGeneration (ref frozen);
    value_head: torch.nn.Linear(hidden, 1); optimizer: a torch optimizer over
    tuned_model's and value_head's parameters, already built by the caller;
    contexts/context_mask: [B, C] LongTensor / mask of the encoder input;
    enc_outputs: [B, T] LongTensor, the generated sequences exactly as the
    original's generate returns them (start token first, then generated
    tokens, right-padded with pad_idx after EOS); pad_idx: the original
    tokenizer's PAD_IDX; scores: [B] FloatTensor, the reward model's scores.

    Performs exactly the computation of RLHFSupervisor._forward_and_log_metrics's
    OPTIMIZATION PHASE (from `batch.targets = enc_outputs` to `loss = ...`,
    rlhf_supervisor.py l.158-210) followed by loss.backward(),
    optimizer.step(), optimizer.zero_grad().  dropout_p is the nn.Dropout
    probability before value_head (the original's nn.Dropout() has p=0.5,
    l.42); the dropout is active iff value_head.training (in the original it
    follows the LightningModule's mode, like value_head).

    Returns {"loss", "ppo_loss", "vf_loss", "entropy_loss"} (python floats,
    values before the step) and {"new_log_probs", "ref_log_probs", "values",
    "advantages", "returns", "rewards", "mask"} (detached tensors, [B, T-1];
    mask is the original's BoolTensor).
    """
    import torch
    import torch.nn.functional as F

    # ---- rlhf_supervisor.py:_log_probs (l.64-73)
    def _log_probs(logits, labels):
        logp = torch.gather(
            F.log_softmax(logits, dim=-1),
            -1,
            labels.unsqueeze(-1)).squeeze(-1)
        return logp

    # ---- rlhf_supervisor.py:_compute_rewards (l.75-87), @torch.no_grad()
    @torch.no_grad()
    def _compute_rewards(scores, new_log_probs, ref_log_probs, gen_len):
        kl_div = new_log_probs - ref_log_probs
        # KL "penalty" is per token and is computed on ALL T-1 positions
        # (padding included); only positions < gen_len are later consumed.
        rewards = -kl_penalty * kl_div
        for i in range(gen_len.size(dim=0)):
            # Score added at the last generated (masked-in) token.  QUIRK: if
            # gen_len[i] == 0 the index is -1 (the LAST column), kept as is.
            rewards[i, gen_len[i] - 1] += scores[i]
        return rewards

    # ---- rlhf_supervisor.py:_estimate_advantages_and_returns (l.89-113),
    #      @torch.no_grad()
    @torch.no_grad()
    def _estimate_advantages_and_returns(rewards, values, gen_len):
        advantages = torch.zeros_like(values)
        for i in range(rewards.size(dim=0)):
            len_ = gen_len[i]  # original names this `len` (0-dim LongTensor)
            nextadvantage = 0
            for j in range(len_ - 1, -1, -1):
                # bootstrap value is 0.0 after the last generated token
                nextvalue = values[i, j + 1] if j < len_ - 1 else 0.0
                delta = rewards[i, j] + gamma * nextvalue - values[i, j]
                advantages[i, j] = delta + gamma * lam * nextadvantage
                nextadvantage = advantages[i, j]
        # Normalize advantage to zero mean and unit variance
        # (statistics over the sum(gen_len) valid tokens; padded entries are 0
        # in the sums, but after this line they become -mean*rsqrt(var+1e-8),
        # i.e. NON-zero -- they are only removed later by `* mask`.)
        num_tokens = torch.sum(gen_len)
        mean = torch.sum(advantages) / num_tokens
        var = torch.sum(advantages ** 2) / num_tokens - mean ** 2
        advantages = (advantages - mean) * torch.rsqrt(var + 1e-8)

        # QUIRK (l.111): returns are built from the WHITENED advantages
        # (not the raw GAE advantages) plus the current values; computed
        # under no_grad, so `returns` is a constant target (no gradient).
        returns = advantages + values

        return advantages, returns

    # ================= OPTIMIZATION PHASE (rlhf_supervisor.py l.158-210)

    # l.161-162
    targets = enc_outputs
    target_mask = (enc_outputs != pad_idx)  # BoolTensor

    # l.163 `output, _ = self.tuned_model.forward(batch)`
    #   -> dialogue_model_supervisor.py:DialogueModelSupervisor.forward
    #      (l.80-85, has_encoder branch) -> dialogue_models.py:GODEL.forward
    #      (l.73-91):
    #   * l.82 "Unmask pad token used to start generation":
    #     `target_mask[:, 0] = 1` IN PLACE on batch.target_mask.  It changes
    #     only column 0 (used as decoder attention), so the later
    #     `mask = batch.target_mask[:, 1:]` is unaffected by it.
    #   * l.84-90: targets go in as decoder_input_ids UNSHIFTED (no `labels`,
    #     no shift_right); decoder_attention_mask = the mutated target_mask;
    #     output_hidden_states=True.
    #   * DialogueModelSupervisor.forward also computes an lm_loss
    #     (F.cross_entropy(..., ignore_index=PAD_IDX), l.95-101) which the
    #     RLHF step discards (`output, _ =`); it has no effect and is omitted.
    output = encoder_decoder_forward(tuned_model, contexts, context_mask, targets, target_mask,
                                     godel=True)
    # l.164-168 (has_encoder branch): logit at t predicts token t+1
    target_logits = output.logits[:, :-1, :]
    # l.169-173 (has_encoder branch): last decoder layer's hidden states as
    # returned by HF (for T5: after final_layer_norm + dropout)
    last_hidden_states = output.decoder_hidden_states[-1][:, :-1, :]
    # l.174-175
    labels = targets[:, 1:]
    mask = target_mask[:, 1:]  # BoolTensor (a view of target_mask)
    # l.176: number of masked-in tokens per row (a COUNT, not a position: if
    # pad_idx ever occurred inside a response the count would still be used
    # as if the valid tokens were a prefix).
    gen_len = torch.sum(mask, dim=-1)
    # l.177
    new_log_probs = _log_probs(target_logits, labels)
    # l.178-179
    entropy = -torch.sum(torch.softmax(target_logits, dim=-1) *
                         torch.log_softmax(target_logits, dim=-1), dim=-1)
    # l.180: values = self.value_head(self.dropout(last_hidden_states)).squeeze(-1)
    values = value_head(
        F.dropout(last_hidden_states, p=dropout_p, training=value_head.training)
    ).squeeze(-1)

    # l.182-190: reference log-probs
    with torch.no_grad():
        # l.183: the original switches the reference model to eval mode here
        # (persistently) on every step.
        ref_model.eval()
        # l.184 `self.ref_model.forward(batch)`: same batch -> GODEL.forward
        # again; `target_mask[:, 0] = 1` is re-applied (idempotent).
        output = encoder_decoder_forward(ref_model, contexts, context_mask, targets,
                                         target_mask, godel=True)
        target_logits = output.logits[:, :-1, :]  # l.185-189
        ref_log_probs = _log_probs(target_logits, labels)  # l.190

    # l.192-194.  QUIRK: the importance ratio is taken against the frozen
    # REFERENCE model's log-probs (not the rollout/old policy's), and
    # new_log_probs is NOT detached, so gradients flow through the ratio.
    ratios = torch.exp(new_log_probs - ref_log_probs)
    clipped_ratios = torch.clip(
        ratios, 1 - clip_epsilon, 1 + clip_epsilon)
    # l.195-196 (both under @torch.no_grad(): rewards/advantages/returns carry
    # no gradient; values keeps its graph for vf_loss)
    rewards = _compute_rewards(scores, new_log_probs, ref_log_probs, gen_len)
    advantages, returns = _estimate_advantages_and_returns(rewards, values, gen_len)

    # l.198-210: Apply PPO Algorithm (With ppo clip, value function and entropy losses)
    num_tokens = torch.sum(mask)
    vf_loss = torch.sum(((values - returns) ** 2) * mask) / num_tokens
    # entropy_loss is the NEGATIVE mean entropy (adding it maximises entropy)
    entropy_loss = -torch.sum(entropy * mask) / num_tokens
    ppo_loss = torch.sum(
        torch.max(-ratios * advantages,
                  -clipped_ratios * advantages) * mask
        ) / num_tokens
    loss = (
        ppo_loss +
        vf_coeff * vf_loss +
        entropy_coeff * entropy_loss
    )

    result = {
        "loss": float(loss.detach().item()),
        "ppo_loss": float(ppo_loss.detach().item()),
        "vf_loss": float(vf_loss.detach().item()),
        "entropy_loss": float(entropy_loss.detach().item()),
        "new_log_probs": new_log_probs.detach().clone(),
        "ref_log_probs": ref_log_probs.detach().clone(),
        "values": values.detach().clone(),
        "advantages": advantages.detach().clone(),
        "returns": returns.detach().clone(),
        "rewards": rewards.detach().clone(),
        "mask": mask.detach().clone(),
    }

    # Lightning automatic optimisation (training_step returns `loss`, l.219-225)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()

    return result
