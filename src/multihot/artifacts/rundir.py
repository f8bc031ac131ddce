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

While a run trains, it also holds ``checkpoints/`` (see :mod:`multihot.training.checkpoint`); the final save
replaces the whole directory, checkpoints included, so a finished run holds only the files above.
A directory holding ``checkpoints/`` but not these files is an unfinished run: it refuses to load
and says how to resume it.

A directory is written whole into a temporary sibling and swapped into place, and single files
are replaced by rename, so an interrupted save never leaves a directory that loads wrong.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import math
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multihot.core.errors import RunDirError

REQUIRED = ("config.json", "model.safetensors", "tokenizer", "labels.json", "thresholds.json")
WEIGHTS = "model.safetensors"
THRESHOLDS = "thresholds.json"
PREVIOUS_THRESHOLDS = "thresholds.previous.json"
"""The thresholds that ``multihot tune-thresholds`` replaced, kept so a re-tuning can be undone."""
CHECKPOINTS = "checkpoints"
"""The subdirectory of an unfinished run that holds what resuming it needs."""
ONNX_FILE, ONNX_INT8_FILE, HF_DIR = "model.onnx", "model.int8.onnx", "hf"
"""Where ``multihot export`` writes by default, inside the run directory."""
RUN_ENTRIES = frozenset(
    (*REQUIRED, "metrics.json", "history.jsonl", "vocabulary.json", PREVIOUS_THRESHOLDS,
     CHECKPOINTS, ONNX_FILE, ONNX_INT8_FILE, HF_DIR)
)  # fmt: skip
"""Every name multihot writes inside a run directory; anything else there is the user's."""
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


def _umask() -> int:
    """The process's umask, read without changing it where Linux shows it (``os.umask`` can only
    be read by setting it, which would race with other threads creating files)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def replacement_mode(path: Path, new: int = 0o666) -> int:
    """The permission bits a new version of ``path`` gets: those of the file or directory it
    replaces, or ``new`` less the umask (what ``open`` or ``mkdir`` would give) when there is none."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return new & ~_umask()


def temp_file(path: Path) -> tuple[int, str]:
    """An open temporary file beside ``path`` to be renamed onto it: ``(fd, name)``.

    It has the mode ``path`` should end with (:func:`replacement_mode`), not ``mkstemp``'s 0600.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, replacement_mode(path))
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise
    return fd, tmp


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename."""
    path = Path(path)
    fd, tmp = temp_file(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def write_dir_atomic(path: Path, fill: Callable[[Path], None]) -> None:
    """Create or replace directory ``path`` with what ``fill(tmp_dir)`` writes, all or nothing.

    The new directory is filled in a temporary sibling and synced to disk, then swapped with the
    old one in one step (``renameat2(RENAME_EXCHANGE)`` on Linux). Where the system cannot swap,
    two renames do it, and a kill between them leaves the old directory beside ``path`` as
    ``.NAME.old-PID``, which :func:`recover_dir` puts back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    leftover = tmp
    try:
        fill(tmp)
        _set_modes(tmp, path)
        _fsync_tree(tmp)
        if not path.exists():
            os.replace(tmp, path)
        elif not _exchange(tmp, path):  # on success tmp holds the old directory
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
            leftover = old
        _fsync(path.parent)
    finally:
        shutil.rmtree(leftover, ignore_errors=True)


def _set_modes(tmp: Path, path: Path) -> None:
    """Give the new tree in ``tmp`` the modes of what it replaces in ``path``, and whatever is new
    the mode the umask gives: ``mkdtemp`` makes 0700 and some writers (safetensors) 0600."""
    for directory, dirs, files in os.walk(tmp):
        for name in [*dirs, *files]:
            new = Path(directory, name)
            if not new.is_symlink():
                default = 0o777 if new.is_dir() else 0o666
                os.chmod(new, replacement_mode(path / new.relative_to(tmp), default))
    os.chmod(tmp, replacement_mode(path, 0o777))


def recover_dir(path: Path) -> None:
    """Put back the previous version of ``path`` when a kill fell between the two renames with
    which :func:`write_dir_atomic` replaces a directory where it cannot swap (not on Linux)."""
    path = Path(path)
    if not path.exists():
        olds = _leftovers(path, "old-*")
        if olds:
            os.replace(max(olds, key=lambda p: p.stat().st_mtime), path)


def remove_leftovers(path: Path) -> None:
    """Delete what interrupted :func:`write_dir_atomic` calls left beside ``path`` (half-filled
    temporary directories, replaced versions). Only while nothing else writes ``path``."""
    recover_dir(path)
    for leftover in _leftovers(path, "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _leftovers(path: Path, pattern: str) -> list[Path]:
    prefix = f".{path.name}."
    return [
        p for p in path.parent.glob(f".*.{pattern}") if p.name.startswith(prefix) and p.is_dir()
    ]


def _fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (directories cannot be opened on Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for directory, _, files in os.walk(root):
        for name in files:
            _fsync(Path(directory, name))
        _fsync(Path(directory))


@functools.cache
def _renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28+
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system or file system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _listing(names: list[str], most: int = 5) -> str:
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
            f"{path}: holds files that are not part of a multihot run ({_listing(foreign)}); "
            "saving a run replaces the whole directory, so it is refused: choose a new or empty "
            "directory"
        )
    if not ((path / "config.json").is_file() or (path / CHECKPOINTS).is_dir()):
        raise RunDirError(
            f"{path}: not a multihot run directory (it holds {_listing(names)} but no "
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


def check_run_dir(path: Path, required: tuple[str, ...] = REQUIRED) -> Path:
    """The run directory as a Path, after checking that every required file is there."""
    path = Path(path)
    if not path.is_dir():
        olds = _leftovers(path, "old-*")
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
