"""Tokenized datasets, length-grouped batches and dynamic padding.

Batches hold texts of similar length and are padded only to their own longest text (on a GPU
rounded up to a multiple of 8, for tensor cores), never to ``max_length``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from multihot.data.encoding import (
    inference_batches,
    is_document,
    pack_documents,
    pad,
    sorted_batches,
    token_count,
)


class TokenizedDataset(Dataset):
    """Token ids (or documents of windows: :func:`multihot.data.encoding.tokenize`) and
    (optionally) multi-hot targets; item ``i`` is ``(i, ids, targets_i)``, or with partial labels
    ``(i, ids, targets_i, known_i)``.

    ``lengths`` are the ids of each text, over all windows of a document, by which batches are
    sorted and grouped."""

    def __init__(
        self, input_ids: list, targets: np.ndarray | None = None, known: np.ndarray | None = None
    ):
        self.input_ids = input_ids
        self.targets = targets
        self.known = known
        """``(n_texts, num_labels)`` bool, the labelled pairs; None when every pair is."""
        self.lengths = np.fromiter(
            (token_count(x) for x in input_ids), dtype=np.int64, count=len(input_ids)
        )

    def inference_batches(self, batch_size: int, batch_tokens: int) -> list[list[int]]:
        """Batches for evaluation and prediction, longest first: of ``batch_size`` texts, or of
        documents packed up to ``batch_tokens`` (:func:`multihot.data.encoding.document_batches`)."""
        return inference_batches(self.input_ids, batch_size, batch_tokens)

    def __len__(self) -> int:
        return len(self.input_ids)

    def __getitem__(self, i: int):
        targets = None if self.targets is None else self.targets[i]
        if self.known is None:
            return i, self.input_ids[i], targets
        return i, self.input_ids[i], targets, self.known[i]


class LengthGroupedBatchSampler(Sampler[list[int]]):
    """Shuffled batches of texts of similar length.

    Indices are shuffled, cut into mega-batches of ``batch_size * group`` texts, each mega-batch
    sorted by length and cut into batches, and the batches shuffled again: batches stay random,
    padding stays small. Deterministic for a seed and epoch (call :meth:`set_epoch`).

    Every batch is full but the last one of the epoch: Accelerate, when it splits each batch over
    processes, expects a short batch only at the end (it skipped one found earlier).
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        seed: int = 0,
        group: int = 50,
        shuffle: bool = True,
    ):
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.group = group
        self.shuffle = shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        if not self.shuffle:
            yield from sorted_batches(self.lengths, self.batch_size)
            return
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(len(self.lengths))
        mega = self.batch_size * self.group
        batches: list[np.ndarray] = []
        for start in range(0, len(order), mega):
            chunk = order[start : start + mega]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches.extend(
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            )
        short = [b for b in batches if len(b) < self.batch_size]
        full = [b for b in batches if len(b) == self.batch_size]
        for b in rng.permutation(len(full)):
            yield full[b].tolist()
        for b in short:  # at most one: only the last mega-batch can end short
            yield b.tolist()


def default_pad_multiple() -> int | None:
    """How far :class:`Collator` rounds a batch's length up by default: to a multiple of 8 where a
    GPU computes (its tensor cores want such shapes), not at all on a CPU, where the rounding is
    only extra work: on GoEmotions (about 20 tokens a text) it pads 17% more tokens, and scratch-mini
    predicted and trained 13% faster without it (bf16 and fp32, 2 cores)."""
    return 8 if torch.cuda.is_available() else None


class Collator:
    """Pads a list of ``(index, ids, targets)`` (or ``(index, ids, targets, known)``) items to the
    batch's longest text.

    Args:
        pad_token_id: the id padding positions get (their attention mask is 0).
        pad_to_multiple_of: round the padded length up to a multiple of this; ``None``: do not;
            ``"auto"``: :func:`default_pad_multiple` (8 with a GPU, none on a CPU).
    """

    def __init__(
        self, pad_token_id: int, pad_to_multiple_of: int | None | Literal["auto"] = "auto"
    ):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = (
            default_pad_multiple() if pad_to_multiple_of == "auto" else pad_to_multiple_of
        )

    def __call__(self, items) -> dict[str, torch.Tensor]:
        """``index``, ``input_ids``, ``attention_mask`` (and ``targets``, and with partial labels
        ``known``); for documents the rows are their windows, and ``chunk_index`` says which rows
        make each document."""
        texts = [item[1] for item in items]
        batch = {"index": torch.as_tensor([item[0] for item in items], dtype=torch.long)}
        arrays: tuple[np.ndarray, ...]
        names: tuple[str, ...]
        if is_document(texts[0]):
            arrays = pack_documents(texts, self.pad_token_id, self.pad_to_multiple_of)
            names = ("input_ids", "attention_mask", "chunk_index")
        else:
            arrays = pad(texts, self.pad_token_id, self.pad_to_multiple_of)
            names = ("input_ids", "attention_mask")
        batch.update((name, torch.from_numpy(a)) for name, a in zip(names, arrays, strict=True))
        if items[0][2] is not None:
            batch["targets"] = torch.as_tensor(
                np.stack([item[2] for item in items]), dtype=torch.float32
            )
        if len(items[0]) > 3:
            batch["known"] = torch.as_tensor(
                np.stack([item[3] for item in items]), dtype=torch.bool
            )
        return batch


def model_inputs(
    batch: dict[str, torch.Tensor], device, batch_tokens: int | None = None
) -> dict[str, torch.Tensor | int]:
    """A collated batch's keyword arguments of a model's forward, on ``device``:
    ``input_ids``, ``attention_mask``, and for documents :func:`window_inputs`."""
    inputs = {name: batch[name].to(device) for name in ("input_ids", "attention_mask")}
    return {**inputs, **window_inputs(batch, device, batch_tokens)}


def window_inputs(
    batch: dict[str, torch.Tensor], device, batch_tokens: int | None = None
) -> dict[str, torch.Tensor | int]:
    """For a batch of documents, the forward's ``chunk_index`` and, given ``batch_tokens``,
    ``encoder_rows``: the windows the encoder takes at a time, so that no encoder pass holds
    more than ``batch_tokens`` ids however long a document is. Nothing for a batch of texts."""
    if "chunk_index" not in batch:
        return {}
    inputs: dict[str, torch.Tensor | int] = {"chunk_index": batch["chunk_index"].to(device)}
    if batch_tokens:
        inputs["encoder_rows"] = max(1, batch_tokens // batch["input_ids"].shape[1])
    return inputs


def split_documents(batch: dict[str, torch.Tensor], batch_tokens: int) -> list[dict]:
    """A collated batch of documents (:class:`Collator`) as consecutive groups of its documents,
    each group's windows, padded to the group's longest, at most ``batch_tokens`` ids (a single
    document over the budget is a group of its own); each group is a batch of the same form. A
    batch within the budget, or of texts, is returned whole.

    Training takes one forward and backward pass per group, the losses weighted by their share of
    the documents (of the known pairs, with partial labels): the gradient of the whole batch, with
    the memory of one group.
    """
    if "chunk_index" not in batch:
        return [batch]
    index, lengths = batch["chunk_index"], batch["attention_mask"].sum(1)
    windows = (index >= 0).sum(1).tolist()
    if index.shape[0] < 2 or batch["input_ids"].numel() <= batch_tokens:
        return [batch]
    rows = [index[d, : windows[d]] for d in range(index.shape[0])]
    longest = [int(lengths[r].max()) for r in rows]
    groups, start, count, width = [], 0, 0, 0
    for d in range(index.shape[0]):
        if d > start and (count + windows[d]) * max(width, longest[d]) > batch_tokens:
            groups.append((start, d))
            start, count, width = d, 0, 0
        count, width = count + windows[d], max(width, longest[d])
    groups.append((start, index.shape[0]))
    parts = []
    for a, b in groups:
        first, last = int(rows[a][0]), int(rows[b - 1][-1]) + 1
        width = max(longest[a:b])
        part_index = index[a:b, : max(windows[a:b])]
        part = {
            "index": batch["index"][a:b],
            "input_ids": batch["input_ids"][first:last, :width],
            "attention_mask": batch["attention_mask"][first:last, :width],
            "chunk_index": torch.where(part_index >= 0, part_index - first, part_index),
        }
        for name in ("targets", "known"):
            if name in batch:
                part[name] = batch[name][a:b]
        parts.append(part)
    return parts
