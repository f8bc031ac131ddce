"""Texts as 64-bit hashes: copies that differ in case and spacing share one, and a set answers
"was this text among those?" for any text."""

from __future__ import annotations

import hashlib

import numpy as np

from multihot.data.duplicates import normalize_text
from multihot.data.texthashes import TextHashes, text_hashes


def test_a_hash_is_blake2b_of_the_normalised_text():
    text = "  Thank\tYou!\n"
    digest = hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=8).digest()
    assert text_hashes([text]).tolist() == [int.from_bytes(digest, "little")]
    assert text_hashes([]).dtype == np.uint64 and len(text_hashes([])) == 0


def test_a_set_holds_each_normalised_text_once_and_finds_its_variants():
    seen = TextHashes.of(["i love this", "I LOVE  this ", "so sad", "\ud800 lone surrogate"])
    assert len(seen) == 3 and seen.values.dtype == np.uint64
    assert np.all(seen.values[1:] > seen.values[:-1])
    asked = [" So Sad", "so sad!", "i love this", "\ud800 LONE surrogate"]
    assert seen.holds(asked).tolist() == [True, False, True, True]
    assert TextHashes.empty().holds(["so sad"]).tolist() == [False]


def test_union_keeps_every_text_once():
    a, b = TextHashes.of(["a", "b"]), TextHashes.of(["B", "c"])
    both = a.union(b)
    assert len(both) == 3 and both.holds(["a", "b", "c", "d"]).tolist() == [True] * 3 + [False]
    assert np.array_equal(TextHashes.empty().union(a, b).values, both.values)
    assert np.array_equal(a.union().values, a.values)
