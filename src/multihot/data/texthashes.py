"""Texts as a set of 64-bit hashes: "was this text among those?" without keeping the texts.

Each text is normalised as copies are compared (:func:`multihot.data.duplicates.normalize_text`:
case and runs of whitespace aside), encoded as UTF-8 and hashed with BLAKE2b cut to 8 bytes
(:data:`HASH_SCHEME`). A set of ``n`` texts is a sorted array of its distinct hashes, 8 bytes a
text: a run records its training texts this way
(:mod:`multihot.artifacts.trainingtexts`), and ``multihot suggest`` skips them.

Two different texts share a hash with a chance of about ``n * m / 2**64`` for a set of ``n`` and
``m`` texts asked about: for a million of each, one in eighteen million.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from multihot.data.duplicates import normalize_text

HASH_SCHEME = "blake2b-64/normalize_text/utf-8"
"""How a text becomes its hash: the name a saved set records, so that a later change of
normalisation or hash is read as "another scheme", never as a set that matches nothing."""


def text_hashes(texts: Iterable[str]) -> np.ndarray:
    """``(n_texts,)`` uint64: each text's hash, in order (:data:`HASH_SCHEME`).

    Example:
        >>> a, b, c = text_hashes(["Thank  you!", "thank you!", "thanks"]).tolist()
        >>> a == b != c
        True
    """
    digests = b"".join(
        hashlib.blake2b(
            normalize_text(text).encode("utf-8", "surrogatepass"), digest_size=8
        ).digest()
        for text in texts
    )
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


@dataclass(frozen=True, eq=False)
class TextHashes:
    """A set of texts as their sorted distinct hashes (:func:`text_hashes`).

    Example:
        >>> seen = TextHashes.of(["I love it", "i love it ", "so sad"])
        >>> len(seen), seen.holds(["I LOVE IT", "so happy"]).tolist()
        (2, [True, False])
    """

    values: np.ndarray
    """``(n_distinct,)`` uint64, sorted, each once."""

    @classmethod
    def of(cls, texts: Iterable[str]) -> TextHashes:
        return cls(np.unique(text_hashes(texts)))

    @classmethod
    def empty(cls) -> TextHashes:
        return cls(np.zeros(0, dtype=np.uint64))

    def __len__(self) -> int:
        return len(self.values)

    def union(self, *others: TextHashes) -> TextHashes:
        """The texts of this set and of ``others``."""
        return TextHashes(np.unique(np.concatenate([self.values, *(o.values for o in others)])))

    def holds(self, texts: Iterable[str]) -> np.ndarray:
        """``(n_texts,)`` bool: whether each text (normalised) is in the set."""
        return self.holds_hashes(text_hashes(texts))

    def holds_hashes(self, hashes: np.ndarray) -> np.ndarray:
        """``(n,)`` bool: whether each of ``hashes`` (of :func:`text_hashes`) is in the set."""
        hashes = np.asarray(hashes, dtype=np.uint64)
        if not len(self.values):
            return np.zeros(hashes.shape, dtype=bool)
        at = np.minimum(np.searchsorted(self.values, hashes), len(self.values) - 1)
        return self.values[at] == hashes
