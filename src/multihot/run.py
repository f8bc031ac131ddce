"""The run directory: the artifact a training run leaves and every prediction path loads.

```
config.json         model/train/data config, the encoder's config, library versions
model.safetensors   weights (never pickled)
tokenizer/          Hugging Face tokenizer files
labels.json         label names, in output order
thresholds.json     one threshold per label, and how they were chosen
metrics.json        validation (and test) metrics, overall and per label
history.jsonl       one line per evaluation
```

A directory is written whole into a temporary sibling and renamed into place, and single files
are replaced by rename, so an interrupted save never leaves a directory that loads wrong.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multihot.errors import RunDirError

REQUIRED = ("config.json", "model.safetensors", "tokenizer", "labels.json", "thresholds.json")
WEIGHTS = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
"""File endings of pickled PyTorch weights, never unpickled without an explicit opt-in."""
_ZIP_MAGIC = b"PK\x03\x04"  # what torch.save writes since PyTorch 1.6


def convert_hint(pickled: Path, run: Path) -> str:
    """How to turn a pickled state dict into the run's safetensors weights."""
    return (
        f"multihot never unpickles weights (unpickling can run code); if you trust the file, "
        f"convert it once yourself: safetensors.torch.save_file(torch.load('{pickled}', "
        f"weights_only=True), '{run / WEIGHTS}')"
    )


def _json_safe(obj: Any) -> Any:
    """NaN and infinities become None, so files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(_json_safe(obj), indent=2, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_dir_atomic(path: Path, fill: Callable[[Path], None]) -> None:
    """Create or replace directory ``path`` with what ``fill(tmp_dir)`` writes, all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        fill(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_run_dir(path: Path, required: tuple[str, ...] = REQUIRED) -> Path:
    """The run directory as a Path, after checking that every required file is there."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory")
    for name in required:
        if name == WEIGHTS and not (path / name).exists():
            refuse_pickled_weights(path)
        if not (path / name).exists():
            raise RunDirError(
                f"{path}: missing {name}; expected a run directory written by 'multihot train'"
            )
    return path


def refuse_pickled_weights(path: Path) -> None:
    """Raise :class:`RunDirError` when a run directory holds pickled weights instead of safetensors."""
    pickled = sorted(p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        raise RunDirError(
            f"{pickled[0]}: pickled weights instead of {WEIGHTS}; {convert_hint(pickled[0], path)}"
        )


def is_pickle(path: Path) -> bool:
    """Whether the file starts like a ``torch.save`` archive or a pickle (never unpickled here)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    # A plain pickle starts with the PROTO opcode and a protocol number from 2 to 5.
    return head.startswith(_ZIP_MAGIC) or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5)


def read_json(path: Path, expected: type = dict) -> Any:
    """Parse a JSON file of the run directory, or raise :class:`RunDirError` naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise RunDirError(f"{path}: corrupt JSON ({err})") from None
    if not isinstance(data, expected):
        raise RunDirError(f"{path}: expected a JSON {expected.__name__}, got {type(data).__name__}")
    return data


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise RunDirError(f"{path}: line {n}: corrupt JSON") from None
    return records


def history_text(history: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(_json_safe(r), ensure_ascii=False) + "\n" for r in history)


def library_versions() -> dict[str, str]:
    import accelerate
    import sklearn
    import tokenizers
    import torch
    import transformers

    from multihot import __version__

    return {
        "multihot": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "accelerate": accelerate.__version__,
        "scikit-learn": sklearn.__version__,
    }
