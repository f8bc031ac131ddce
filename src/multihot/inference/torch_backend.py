"""The PyTorch backend: a run's model on the CPU or a GPU, in fp32, bf16 or fp16.

:func:`predict_logits` is the batched forward pass that training's evaluation, prediction and the
export's reference all use; :class:`TorchBackend` adds the run's tokenizer and the per-precision
copies of the model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from multihot.core.config import TRANSFORMER_KIND
from multihot.core.precision import (
    autocast,
    default_device,
    fast_attention,
    inference_copy,
    resolve_precision,
)
from multihot.data.batching import Collator, TokenizedDataset, model_inputs
from multihot.data.encoding import Reading, encode
from multihot.modeling.ensemble import mean_probability_logits
from multihot.modeling.first_token import first_token_only
from multihot.modeling.model import MultiLabelModel
from multihot.scoring.calibration import Calibration, calibrated
from multihot.scoring.probabilities import sigmoid


@torch.inference_mode()
def predict_logits(
    model: torch.nn.Module,
    input_ids: list,
    *,
    pad_token_id: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    prune: bool = True,
    batch_tokens: int = 16384,
) -> np.ndarray:
    """Logits of shape ``(n_texts, num_labels)`` as float32, rows in the order of ``input_ids``.

    Texts are batched in order of length (so padding is small) and put back in input order. With
    ``prune``, models that read only the first token's state compute their last layer for that
    token only (:mod:`multihot.modeling.first_token`; the same logits up to float rounding).

    Documents of windows (``long_text="chunk"``) are packed, the windows of several documents in
    one batch of at most ``batch_tokens`` ids; a document longer than that is encoded
    ``batch_tokens`` ids at a time, so memory stays bounded however long it is.
    """
    num_labels = model.num_labels
    assert isinstance(num_labels, int)  # set by every model predicted from, ensembles included
    out = np.empty((len(input_ids), num_labels), dtype=np.float32)

    def keep(rows: list[int], inputs: dict) -> None:
        out[rows] = model(**inputs).float().cpu().numpy()

    _each_batch(
        model, input_ids, keep, pad_token_id, batch_size, device, precision, prune, batch_tokens
    )
    return out


def _each_batch(
    model: torch.nn.Module,
    input_ids: list,
    step: Callable[[list[int], dict], None],
    pad_token_id: int,
    batch_size: int,
    device: torch.device | str,
    precision: str,
    prune: bool,
    batch_tokens: int,
) -> None:
    """``step(rows, inputs)`` for each batch of :func:`predict_logits`: ``rows`` the batch's
    indices in ``input_ids``, ``inputs`` the model's keyword arguments, under autocast."""
    dataset = TokenizedDataset(input_ids)
    collate = Collator(pad_token_id)
    model.eval()
    pruned = first_token_only(model) if prune else contextlib.nullcontext()
    with pruned:
        for batch_indices in dataset.inference_batches(batch_size, batch_tokens):
            batch = collate([dataset[i] for i in batch_indices])
            with autocast(device, precision), fast_attention(device):
                step(batch_indices, model_inputs(batch, device, batch_tokens))


@dataclass
class Readout:
    """What one pass over texts gives besides :func:`predict_logits`: each member's logits and
    the vectors its head read. For a single model, ``members`` is 1.

    Attributes:
        logits: ``(n_texts, num_labels)`` float32, the model's (the members' mean probability).
        member_logits: ``(members, n_texts, num_labels)`` float32.
        vectors: ``(members, n_texts, hidden)`` float32: each member's pooled vector of a text
            (with label attention, the mean of its per-label vectors).
    """

    logits: np.ndarray
    member_logits: np.ndarray
    vectors: np.ndarray


@torch.inference_mode()
def predict_readout(
    model: torch.nn.Module,
    input_ids: list,
    *,
    pad_token_id: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    prune: bool = True,
    batch_tokens: int = 16384,
) -> Readout:
    """:func:`predict_logits`, with each member's logits and pooled vectors (:class:`Readout`),
    in one pass: the same logits, batched the same way (the arguments are its own)."""
    # A seed ensemble's members, or the model itself (first_token.py reads them the same way).
    members = cast(list[MultiLabelModel], list(getattr(model, "members", [model])))
    n, num_labels = len(input_ids), model.num_labels
    assert isinstance(num_labels, int)  # set by every model predicted from, ensembles included
    hidden = members[0].encoder.config.hidden_size
    logits = np.empty((n, num_labels), dtype=np.float32)
    member_logits = np.empty((len(members), n, num_labels), dtype=np.float32)
    vectors = np.empty((len(members), n, hidden), dtype=np.float32)

    def keep(rows: list[int], inputs: dict) -> None:
        each = []
        for m, member in enumerate(members):
            pooled = member.embed(**inputs)
            each.append(member.head(pooled))
            if pooled.dim() == 3:  # per-label pooling: (batch, num_labels, hidden)
                pooled = pooled.mean(dim=1)
            vectors[m, rows] = pooled.float().cpu().numpy()
            member_logits[m, rows] = each[-1].float().cpu().numpy()
        # As SeedEnsemble.forward combines them, so these are the logits predict_logits gives.
        combined = mean_probability_logits(torch.stack(each)) if len(each) > 1 else each[0]
        logits[rows] = combined.float().cpu().numpy()

    _each_batch(
        model, input_ids, keep, pad_token_id, batch_size, device, precision, prune, batch_tokens
    )
    return Readout(logits, member_logits, vectors)


class TorchBackend:
    """Logits from a transformer run's model (a :class:`multihot.modeling.model.MultiLabelModel`
    or a seed ensemble of them), its tokenizer and how it reads a text (a
    :class:`multihot.data.encoding.Reading`, or its ``max_length`` alone for truncation).

    Example:
        >>> backend = TorchBackend(model, tokenizer, encoder_config, 128)  # doctest: +SKIP
        >>> backend.predict_logits(["so happy for you!"]).shape  # doctest: +SKIP
        (1, 28)
    """

    kind = TRANSFORMER_KIND

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        encoder_config: dict | None,
        reading: Reading | int,
        calibration: Calibration | None = None,
    ):
        self.model, self.tokenizer, self.encoder_config = model, tokenizer, encoder_config
        self.reading = Reading.coerce(reading)
        self.calibration = calibration
        """Temperatures applied to every logit this backend returns (None: uncalibrated)."""
        self.device = default_device()
        self.model.to(self.device).eval()
        self._copies: dict[str, tuple[torch.nn.Module, str]] = {}

    def _copy(self, precision: str) -> tuple[torch.nn.Module, str]:
        """The model to predict with in ``precision`` and the precision to autocast it to
        (:func:`multihot.core.precision.inference_copy`), made once per precision."""
        precision = resolve_precision(precision, self.device)
        if precision not in self._copies:
            self._copies[precision] = inference_copy(self.model, self.device, precision)
        return self._copies[precision]

    def encode(self, texts) -> list:
        """The token ids of checked texts, read as the run reads them (truncated, or documents
        of windows): what :meth:`predict_proba_encoded` computes from."""
        return encode(self.tokenizer, texts, self.reading)

    def predict_logits(self, texts, batch_size: int = 64, precision: str = "auto") -> np.ndarray:
        """Logits of shape ``(n_texts, num_labels)``, rows in input order, divided by the
        calibration (``logit / T + b``) when there is one.

        ``precision="auto"`` is bf16 where the processor supports it (about 1e-2 from fp32).
        """
        return self.logits_encoded(self.encode(texts), batch_size, precision)

    def logits_encoded(
        self, ids: list[list[int]], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """:meth:`predict_logits` of texts already encoded (:meth:`encode`)."""
        model, autocast_to = self._copy(precision)
        logits = predict_logits(
            model,
            ids,
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=batch_size,
            device=self.device,
            precision=autocast_to,
            batch_tokens=self.reading.batch_tokens,
        )
        return calibrated(logits, self.calibration)

    def predict_proba(self, texts, batch_size: int = 64, precision: str = "auto") -> np.ndarray:
        """Probabilities of shape ``(n_texts, num_labels)``."""
        return sigmoid(self.predict_logits(texts, batch_size, precision))

    def readout(self, texts, batch_size: int = 64, precision: str = "auto") -> Readout:
        """:meth:`predict_logits` with each member's logits and pooled vectors
        (:func:`predict_readout`); every logit calibrated as :meth:`predict_logits` calibrates
        it (a member's with the calibration fitted on the members' mean)."""
        model, autocast_to = self._copy(precision)
        readout = predict_readout(
            model,
            self.encode(texts),
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=batch_size,
            device=self.device,
            precision=autocast_to,
            batch_tokens=self.reading.batch_tokens,
        )
        readout.logits = calibrated(readout.logits, self.calibration)
        readout.member_logits = calibrated(readout.member_logits, self.calibration)  # per column
        return readout

    def predict_proba_encoded(
        self, ids: list[list[int]], batch_size: int = 64, precision: str = "auto"
    ) -> np.ndarray:
        """:meth:`predict_proba` of texts already encoded (:meth:`encode`)."""
        return sigmoid(self.logits_encoded(ids, batch_size, precision))
