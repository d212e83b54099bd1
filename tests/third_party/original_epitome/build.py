"""Offline construction of the ORIGINAL project's EPITOME classifier.

``BiEncoderAttentionWithRationaleClassification.__init__`` (models.py, copied
verbatim) ends with two calls::

    SeekerEncoder.from_pretrained("roberta-base", output_attentions=False, output_hidden_states=False)
    ResponderEncoder.from_pretrained("roberta-base", output_attentions=False, output_hidden_states=False)

which download the roberta-base config and weights from the (unreachable) hub.
:func:`build` temporarily replaces those two classmethods -- inside a context
manager, restored on exit; models.py itself is NOT edited -- with building the
same encoder class, ``cls(config)``, from the original's own ``RobertaConfig``
(configuration_roberta.py) with the roberta-base hyper-parameters except for
the sizes given as arguments.  The replacement keeps the other observable
effects of the original ``from_pretrained`` (modeling_utils.py l.620-724): the
keyword arguments land on the config, ``tie_weights()`` is called and the
encoder is left in ``eval()`` mode.

The initial weights are therefore random rather than roberta-base's; this does
not matter for a reference, because the original (empathy_scorer.py) always
follows construction with ``load_state_dict(torch.load(path))``, which
overwrites every parameter and buffer of the model.  Dropout probabilities,
activation (gelu), layer-norm eps and the padding id are those of roberta-base.
"""

import contextlib
from typing import Dict, Iterator, List, Tuple

from .configuration_roberta import RobertaConfig
from .models import (
    BiEncoderAttentionWithRationaleClassification,
    ResponderEncoder,
    SeekerEncoder,
)


def make_config(
    num_layers: int,
    intermediate_size: int,
    vocab_size: int = 50265,
    max_position_embeddings: int = 66,
    num_heads: int = 12,
    **kwargs,
) -> RobertaConfig:
    """roberta-base-shaped ``RobertaConfig`` (768 wide) with the given sizes."""
    return RobertaConfig(
        vocab_size=vocab_size,
        hidden_size=768,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        pad_token_id=1,
        **kwargs,
    )


@contextlib.contextmanager
def offline_encoders(**config_sizes) -> Iterator[None]:
    """Within the block, ``SeekerEncoder/ResponderEncoder.from_pretrained(name, **kw)``
    build ``cls(make_config(**config_sizes, **kw))`` instead of hitting the hub."""
    saved = {cls: cls.__dict__.get("from_pretrained") for cls in (SeekerEncoder, ResponderEncoder)}

    def _offline_from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        config = make_config(**config_sizes, **kwargs)
        model = cls(config, *model_args)
        model.tie_weights()  # as the original from_pretrained does
        model.eval()  # as the original from_pretrained does
        return model

    try:
        for cls in saved:
            cls.from_pretrained = classmethod(_offline_from_pretrained)
        yield
    finally:
        for cls, original in saved.items():
            if original is None:
                del cls.from_pretrained  # fall back to the inherited PreTrainedModel.from_pretrained
            else:
                cls.from_pretrained = original


def build(
    num_layers: int,
    intermediate_size: int,
    vocab_size: int = 50265,
    max_position_embeddings: int = 66,
    num_heads: int = 12,
) -> BiEncoderAttentionWithRationaleClassification:
    """The original ``BiEncoderAttentionWithRationaleClassification()`` with its
    default arguments (hidden 768, dropout 0.2, 1 attention head, 3 empathy /
    2 rationale labels), exactly as ``EmpathyScorer`` constructs it, but with
    both RoBERTa encoders built offline from ``make_config(...)`` (see the
    module docstring).  Weights are random until ``load_state_dict`` is called.
    The returned module is in training mode (as in the original); call
    ``.eval()`` before comparing outputs."""
    with offline_encoders(
        num_layers=num_layers,
        intermediate_size=intermediate_size,
        vocab_size=vocab_size,
        max_position_embeddings=max_position_embeddings,
        num_heads=num_heads,
    ):
        return BiEncoderAttentionWithRationaleClassification()


def state_dict_keys(
    num_layers: int,
    intermediate_size: int,
    vocab_size: int = 50265,
    max_position_embeddings: int = 66,
    num_heads: int = 12,
) -> List[Tuple[str, Tuple[int, ...]]]:
    """Sorted ``(key, shape)`` pairs of ``build(...).state_dict()``."""
    sd: Dict = build(
        num_layers, intermediate_size, vocab_size, max_position_embeddings, num_heads
    ).state_dict()
    return sorted((k, tuple(v.shape)) for k, v in sd.items())
