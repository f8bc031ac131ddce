"""Data: reading files into texts and labels, the label set, splits, texts -> token ids, batches,
prediction output. Nothing here knows about models or training.

``Dataset``, ``read_dataset``, ``read_goemotions`` and ``iter_text_batches`` are imported from
:mod:`multihot.data.readers` when first used: the readers need pandas, which ONNX prediction of
``--text`` does without.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Dataset", "iter_text_batches", "read_dataset", "read_goemotions"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from multihot.data import readers  # heavy: pandas, which the readers need (see above)

        return getattr(readers, name)
    raise AttributeError(f"module 'multihot.data' has no attribute {name!r}")
