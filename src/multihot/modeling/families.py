"""What an encoder family supports: the one place that decides it; every other module asks here.

Each answer is read from the loaded encoder rather than from a list of names, so an encoder of a
family nobody listed gets the features its modules allow:

- ``pooler``: the model has a ``pooler`` submodule (BERT, RoBERTa, XLM-R, ALBERT, MPNet; not
  DistilBERT, ELECTRA, DeBERTa-v2 or ModernBERT), so ``pooling="pooler"`` has a vector to read;
- ``gradient_checkpointing``: transformers implements it for the model class
  (``supports_gradient_checkpointing``; not ALBERT or MPNet);
- ``first_token_pruning``: the last layer is BERT-style, so
  :mod:`multihot.modeling.first_token` can compute it for the first token alone (BERT, RoBERTa,
  XLM-R, ELECTRA; not DistilBERT, ALBERT, DeBERTa-v2, MPNet or ModernBERT).

:func:`check_settings` turns those answers into one-line errors for the settings a run asks for,
before anything is written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from multihot.core.config import POOLINGS, RunConfig
from multihot.core.errors import ConfigError

logger = logging.getLogger(__name__)

FIRST_TOKEN_POOLINGS = ("cls", "pooler")
"""The poolings that read the first token's state alone (what first-token pruning needs)."""


@dataclass(frozen=True)
class EncoderSupport:
    """What one encoder supports.

    Example:
        >>> from multihot.modeling.encoders import encoder_from_config, scratch_config
        >>> encoder_support(encoder_from_config(scratch_config("scratch-tiny", 100, 16)))
        EncoderSupport(family='bert', pooler=True, gradient_checkpointing=True, first_token_pruning=True)
    """

    family: str
    """The family, as transformers names it (``config.model_type``: ``bert``, ``distilbert``)."""
    pooler: bool
    """Whether the encoder has a pooler, whose output ``pooling="pooler"`` reads."""
    gradient_checkpointing: bool
    """Whether transformers can recompute its activations in the backward pass."""
    first_token_pruning: bool
    """Whether its last layer can be computed for the first token only (``cls``/``pooler``)."""


def encoder_support(encoder: nn.Module) -> EncoderSupport:
    """What ``encoder`` (a Hugging Face ``PreTrainedModel``) supports, read from the model itself."""
    config = getattr(encoder, "config", None)
    return EncoderSupport(
        family=str(getattr(config, "model_type", None) or type(encoder).__name__),
        pooler=getattr(encoder, "pooler", None) is not None,
        gradient_checkpointing=bool(getattr(encoder, "supports_gradient_checkpointing", False)),
        first_token_pruning=first_token_layers(encoder) is not None,
    )


def first_token_layers(encoder: nn.Module | None) -> tuple[nn.ModuleList, nn.Module] | None:
    """``(layers, last layer)`` when ``encoder``'s last layer is BERT-style, the shape
    :class:`multihot.modeling.first_token.FirstTokenLayer` wraps (``encoder.layer`` of layers with
    ``attention.self.query/key/value``, ``attention.output`` and ``feed_forward_chunk``, absolute
    positions); else None."""
    config = getattr(encoder, "config", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers) or config is None:
        return None
    if getattr(config, "is_decoder", False) or getattr(config, "chunk_size_feed_forward", 0):
        return None
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return None  # relative position scores live inside the attention module
    last = layers[-1]
    attention = getattr(getattr(last, "attention", None), "self", None)
    needed = ("query", "key", "value", "num_attention_heads", "attention_head_size")
    if attention is None or not all(hasattr(attention, name) for name in needed):
        return None
    if not hasattr(last.attention, "output") or not hasattr(last, "feed_forward_chunk"):
        return None
    return layers, last


def check_pooling(support: EncoderSupport, pooling: str, setting: str = "pooling") -> None:
    """Raise :class:`ConfigError` when the encoder cannot give what ``pooling`` reads."""
    if pooling == "pooler" and not support.pooler:
        others = [name for name in POOLINGS if name != "pooler"]
        raise ConfigError(
            f"{setting} pooler: {support.family} encoders have no pooler; use "
            f"{', '.join(others[:-1])} or {others[-1]}"
        )


def check_gradient_checkpointing(support: EncoderSupport) -> None:
    """Raise :class:`ConfigError` when the encoder cannot recompute its activations."""
    if not support.gradient_checkpointing:
        raise ConfigError(
            f"gradient_checkpointing: transformers does not support it for {support.family} "
            "encoders; leave it off, and save memory with a smaller batch_size and a larger "
            "grad_accum instead"
        )


def check_settings(encoder: nn.Module, config: RunConfig) -> EncoderSupport:
    """Check every setting of ``config`` that depends on the encoder, when it is loaded and before
    anything is written; returns what the encoder supports.

    Raises:
        ConfigError: ``pooling`` or ``ensemble_pooling`` is ``pooler`` and the encoder has none, or
            ``gradient_checkpointing`` is asked of an encoder that cannot.
    """
    support = encoder_support(encoder)
    m = config.model
    if m.pooling is not None:
        check_pooling(support, m.pooling)
    for pooling in m.ensemble_pooling or []:
        check_pooling(support, pooling, "ensemble_pooling")
    if config.train.gradient_checkpointing:
        check_gradient_checkpointing(support)
    poolings = set(m.ensemble_pooling or ([m.pooling] if m.pooling else []))
    if poolings & set(FIRST_TOKEN_POOLINGS) and not support.first_token_pruning:
        logger.info(
            "%s encoder: prediction computes the last layer for every token (first-token pruning "
            "needs a BERT-style last layer)",
            support.family,
        )
    return support
