"""Recognising pickled PyTorch weights, which multihot never unpickles (unpickling can run code)."""

from __future__ import annotations

from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""File endings of pickled PyTorch weights, never unpickled without an explicit opt-in."""


_ZIP_MAGIC = b"PK\x03\x04"  # what torch.save writes since PyTorch 1.6


def is_pickle(path: Path) -> bool:
    """Whether the file starts like a ``torch.save`` archive or a pickle (never unpickled here)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    # A plain pickle starts with the PROTO opcode and a protocol number from 2 to 5.
    return head.startswith(_ZIP_MAGIC) or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)
