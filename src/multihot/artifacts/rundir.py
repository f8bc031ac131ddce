"""The run directory: the artifact a training run leaves and every prediction path loads.

```
config.json         model/train/data config, the encoder's config, library versions, weights digest,
                    and the run it started from (init_from), if any
model.safetensors   weights (never pickled)
tokenizer/          Hugging Face tokenizer files
labels.json         label names, in output order
thresholds.json     one threshold per label, and how they were chosen
metrics.json        validation (and test) metrics, overall and per label
history.jsonl       one line per evaluation
validation.jsonl    validation texts, labels and logits (for reports without data)
training-texts.safetensors  the training texts as 64-bit hashes, sorted (what suggest skips)
calibration.json    a temperature per label, once calibrated
training-curves.png history.jsonl plotted, when matplotlib is installed
```

While a run trains, it also holds ``checkpoints/`` (see :mod:`multihot.training.checkpoint`); the final save
replaces the whole directory, checkpoints included, so a finished run holds only the files above.
A directory holding ``checkpoints/`` but not these files is an unfinished run: it refuses to load
and says how to resume it.

A directory is written whole into a temporary sibling and swapped into place, and single files
are replaced by rename, so an interrupted save never leaves a directory that loads wrong.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from multihot import __version__
from multihot.core.errors import RunDirError
from multihot.core.files import json_safe, leftovers, strict_loads
from multihot.core.pickles import PICKLE_SUFFIXES

CONFIG = "config.json"
WEIGHTS, TOKENIZER, VOCABULARY = "model.safetensors", "tokenizer", "vocabulary.json"
THRESHOLDS, METRICS = "thresholds.json", "metrics.json"
REQUIRED = ("config.json", WEIGHTS, TOKENIZER, "labels.json", THRESHOLDS)
"""The files a transformer run cannot load without."""
LINEAR_REQUIRED = ("config.json", WEIGHTS, VOCABULARY, "labels.json", THRESHOLDS)
"""The same for a linear baseline run."""
ONNX_REQUIRED = ("config.json", TOKENIZER, "labels.json", THRESHOLDS)
"""What ONNX prediction reads of a transformer run (the graph instead of the weights)."""
PREVIOUS_THRESHOLDS = "thresholds.previous.json"
"""The thresholds that ``multihot tune-thresholds`` replaced, kept so a re-tuning can be undone."""
CALIBRATION = "calibration.json"
"""A temperature per label (``multihot tune-thresholds --calibrate``), applied to every probability."""
VALIDATION = "validation.jsonl"
"""The validation texts, their labels and the model's uncalibrated logits, as training left them:
what ``multihot report RUN`` draws from without data."""
TRAINING_TEXTS = "training-texts.safetensors"
"""The run's training texts (and, for a run continued from another, that run's too) as sorted
64-bit hashes (:mod:`multihot.artifacts.trainingtexts`): which texts ``multihot suggest`` skips.
Runs saved before it was kept do not have it."""
CHECKPOINTS = "checkpoints"
"""The subdirectory of an unfinished run that holds what resuming it needs."""
CHECKPOINT_RUN = "run.json"
"""In ``checkpoints/``: how to resume (the config, the data files, fingerprints)."""
STATE_JSON, STATE_TENSORS = "state.json", "state.safetensors"
"""A saved loop state (or a finished member's result): its JSON part and its tensors."""
MEMBER_PREFIX, MEMBER_STATE, MEMBER_RESULT = "member-", "last", "result"
"""In ``checkpoints/``: ``member-N/last`` holds member N's latest state, ``member-N/result`` its
outcome once finished."""
TRAINING_CURVES = "training-curves.png"
"""The plot of history.jsonl that training leaves when matplotlib is installed."""
ONNX_FILE, ONNX_INT8_FILE, HF_DIR = "model.onnx", "model.int8.onnx", "hf"
"""Where ``multihot export`` writes by default, inside the run directory."""
RUN_ENTRIES = frozenset(
    (
        *REQUIRED,
        METRICS,
        "history.jsonl",
        VOCABULARY,
        PREVIOUS_THRESHOLDS,
        CALIBRATION,
        VALIDATION,
        TRAINING_TEXTS,
        TRAINING_CURVES,
        CHECKPOINTS,
        ONNX_FILE,
        ONNX_INT8_FILE,
        HF_DIR,
    )
)
"""Every name multihot writes inside a run directory; anything else there is the user's."""


def convert_hint(pickled: Path, run: Path) -> str:
    """How to turn a pickled state dict into the run's safetensors weights."""
    return (
        f"multihot never unpickles weights (unpickling can run code); if you trust the file, "
        f"convert it once yourself: safetensors.torch.save_file(torch.load('{pickled}', "
        f"weights_only=True), '{run / WEIGHTS}')"
    )


def listing(names: list[str], most: int = 5) -> str:
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _is_run_entry(name: str) -> bool:
    """A name multihot writes in a run directory, or what a kill left of writing one (the
    ``.NAME.XXXX.tmp`` of :func:`temp_file`)."""
    if name in RUN_ENTRIES:
        return True
    return name.endswith(".tmp") and any(name.startswith(f".{entry}.") for entry in RUN_ENTRIES)


def check_output_dir(path: Path) -> None:
    """Raise :class:`RunDirError` unless a run may be written to ``path``, replacing what is there.

    A run is saved by replacing its directory whole, so it may only be written where nothing of the
    user's is lost: a path that does not exist, an empty directory, or a multihot run directory
    (finished, or an unfinished one holding ``checkpoints/``) holding nothing but multihot's files.
    A file, or a directory with anything else in it, is refused, naming what is there.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_dir():
        raise RunDirError(
            f"{path}: exists and is not a directory; expected a new or empty directory, or a "
            "multihot run directory to replace"
        )
    names = sorted(entry.name for entry in path.iterdir())
    if not names:
        return
    foreign = [name for name in names if not _is_run_entry(name)]
    if foreign:
        raise RunDirError(
            f"{path}: holds files that are not part of a multihot run ({listing(foreign)}); "
            "saving a run replaces the whole directory, so it is refused: choose a new or empty "
            "directory"
        )
    if not ((path / "config.json").is_file() or (path / CHECKPOINTS).is_dir()):
        raise RunDirError(
            f"{path}: not a multihot run directory (it holds {listing(names)} but no "
            "config.json); saving a run replaces the whole directory, so it is refused: choose "
            "a new or empty directory"
        )


def _outside(path: Path, root: Path) -> Path | None:
    """Where ``path`` (or a file under it) really is, when that is outside ``root``; else None."""
    paths = [path, *(p for p in path.rglob("*"))] if path.is_dir() else [path]
    for candidate in paths:
        real = candidate.resolve()
        if real != root and root not in real.parents:
            return candidate
    return None


def check_self_contained(path: Path, names: tuple[str, ...]) -> None:
    """Refuse a run directory whose files ``names`` are symlinks to places outside it.

    A run directory is one self-contained artifact: it is copied, replaced whole, and checked file
    against file when it loads. A weights file linked in from elsewhere can change under it, and
    goes away silently when the run is replaced.
    """
    root = Path(path).resolve()
    for name in names:
        linked = _outside(Path(path) / name, root) if (Path(path) / name).exists() else None
        if linked is not None:
            raise RunDirError(
                f"{linked}: a symlink to {linked.resolve()}, outside the run directory; a run "
                "directory must be self-contained: copy the file in place of the link"
            )


def read_config(path: str | Path) -> dict[str, Any]:
    """A run directory's config.json, parsed (the directory checked to be one)."""
    return read_json(check_run_dir(Path(path), required=(CONFIG,)) / CONFIG)


def check_run_dir(path: Path, required: tuple[str, ...] = REQUIRED) -> Path:
    """The run directory as a Path, after checking that every required file is there."""
    path = Path(path)
    if not path.is_dir():
        olds = leftovers(path, "old-*")
        hint = f" (an interrupted save left its previous version in {olds[0]})" if olds else ""
        raise RunDirError(f"{path}: no such run directory{hint}")
    for name in required:
        if name == WEIGHTS and not (path / name).exists():
            refuse_pickled_weights(path)
        if not (path / name).exists() and (path / CHECKPOINTS).is_dir():
            raise RunDirError(
                f"{path}: an unfinished training run (it has no {name} yet); "
                f"continue it with 'multihot train --resume {path}'"
            )
        if not (path / name).exists():
            raise RunDirError(
                f"{path}: missing {name}; expected a run directory written by 'multihot train'"
            )
    check_self_contained(path, required)
    for name in required:
        if name == TOKENIZER:
            check_directory_of_files(path / name)
        else:
            check_regular(path / name)
    return path


_FILE_TYPES = {
    stat.S_ISDIR: "a directory",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISSOCK: "a socket",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
}


def check_regular(path: Path) -> None:
    """Raise :class:`RunDirError` unless ``path`` (a link followed) is a regular file, or is not
    there (its reader says so). Reading a FIFO blocks until something writes to it, and a device
    may never end: a run's files are checked before they are opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_TYPES.items() if test(mode)), "not a file")
        raise RunDirError(
            f"{path}: not a regular file ({kind}); expected a file written by multihot"
        )


def check_directory_of_files(path: Path) -> None:
    """Raise :class:`RunDirError` unless ``path`` is a directory whose entries are regular files
    or directories (what the tokenizer reads there is read without further checks)."""
    if not path.is_dir():
        raise RunDirError(f"{path}: not a directory; expected the run's tokenizer files")
    for entry in path.iterdir():
        if not entry.is_dir():
            check_regular(entry)


def refuse_pickled_weights(path: Path) -> None:
    """Raise :class:`RunDirError` when a run directory holds pickled weights instead of safetensors."""
    pickled = sorted(p for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        raise RunDirError(
            f"{pickled[0]}: pickled weights instead of {WEIGHTS}; {convert_hint(pickled[0], path)}"
        )


def read_json(path: Path, expected: type = dict) -> Any:
    """Parse a JSON file of the run directory, or raise :class:`RunDirError` naming it."""
    check_regular(Path(path))
    try:
        data = strict_loads(Path(path).read_text(encoding="utf-8"))
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
    check_regular(path)
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(strict_loads(line))
            except ValueError:
                raise RunDirError(f"{path}: line {n}: corrupt JSON") from None
    return records


def history_text(history: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(json_safe(r), ensure_ascii=False) + "\n" for r in history)


def library_versions() -> dict[str, str]:
    # heavy: accelerate, sklearn, tokenizers, torch, transformers (ONNX prediction imports this
    # module without them)
    import accelerate
    import sklearn
    import tokenizers
    import torch
    import transformers

    return {
        "multihot": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "accelerate": accelerate.__version__,
        "scikit-learn": sklearn.__version__,
    }
