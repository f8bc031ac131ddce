"""training-texts.safetensors: which texts a run was trained on, as hashes, not as texts.

One uint64 tensor, ``hashes``: the sorted distinct 64-bit hashes of the training texts
(:class:`multihot.data.texthashes.TextHashes`), 8 bytes a text; the header's metadata names the
scheme (``hash``: :data:`~multihot.data.texthashes.HASH_SCHEME`), its one key, so that the same
texts give the same bytes (a resumed run ends with the file the uninterrupted one has). A run
continued from another (``init_from``) records that run's texts too: its model learnt from them.
``multihot suggest`` skips these texts. Safetensors, so reading it never unpickles anything.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from multihot.artifacts.rundir import TRAINING_TEXTS, check_regular
from multihot.core.errors import RunDirError
from multihot.data.texthashes import HASH_SCHEME, TextHashes

logger = logging.getLogger(__name__)

HASHES = "hashes"
"""The tensor's name in the file."""


def write_training_texts(directory: Path, hashes: TextHashes) -> None:
    """Write ``hashes`` as the run's training texts (inside a run being saved)."""
    metadata = {"hash": HASH_SCHEME}
    save_file({HASHES: hashes.values}, str(Path(directory) / TRAINING_TEXTS), metadata=metadata)


def read_training_texts(run: Path) -> TextHashes | None:
    """The run's training texts, or None when it has none recorded (saved before they were
    kept) or recorded them with a scheme this version does not know (a warning says so).

    Raises:
        RunDirError: the file is there and is not such a set.
    """
    path = Path(run) / TRAINING_TEXTS
    if not path.exists():
        return None
    check_regular(path)
    try:
        with safe_open(str(path), framework="np") as fh:
            scheme = (fh.metadata() or {}).get("hash")
            values = fh.get_tensor(HASHES)
    except Exception as err:  # safetensors raises several types for truncated or foreign files
        raise RunDirError(f"{path}: cannot read the training texts' hashes ({err})") from None
    if scheme != HASH_SCHEME:
        logger.warning(
            "%s: hashes of another scheme (%r, this version reads %r); the run's training texts "
            "are taken as unknown",
            path,
            scheme,
            HASH_SCHEME,
        )
        return None
    if values.dtype != np.uint64 or values.ndim != 1 or np.any(values[1:] <= values[:-1]):
        raise RunDirError(
            f"{path}: expected one sorted uint64 tensor of distinct hashes, got {values.dtype} "
            f"of shape {values.shape}"
        )
    return TextHashes(values)
