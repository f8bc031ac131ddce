"""Files written all or nothing: a temporary sibling renamed (or, for a directory, swapped) into
place, with the permissions of what it replaces, and strict JSON.

A directory is written whole into a temporary sibling and swapped into place, and single files are
replaced by rename, so an interrupted write never leaves a file or directory that reads wrong.
"""

from __future__ import annotations

import contextlib
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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def json_safe(obj: Any) -> Any:
    """NaN and infinities become None, so files are strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


class RepeatedKeyError(ValueError):
    """A JSON object that gives one key twice."""


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refusing a key given twice: Python's parser keeps the last one,
    and neither multihot nor a client means that (``object_pairs_hook`` of ``json.loads``).

    Example:
        >>> json.loads('{"a": 1, "a": 2}', object_pairs_hook=unique_keys)
        Traceback (most recent call last):
        multihot.core.files.RepeatedKeyError: key 'a' appears more than once in one object
    """
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKeyError(f"key {key[:40]!r} appears more than once in one object")
            seen.add(key)
    return obj


_STRICT_JSON = json.JSONDecoder(object_pairs_hook=unique_keys)  # one, not one per call


def strict_loads(text: str) -> Any:
    """``json.loads`` that fails only with ValueError: a repeated key in an object (which would
    otherwise silently keep the last value) and nesting too deep for the parser (RecursionError)
    included, as are integers of over 4,300 digits (Python's own ValueError)."""
    try:
        return _STRICT_JSON.decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def dumps(obj: Any) -> str:
    return json.dumps(json_safe(obj), indent=2, ensure_ascii=False) + "\n"


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


@contextlib.contextmanager
def replaced(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` (:func:`temp_file`), for a library that writes to a
    name, renamed onto ``path`` when the block succeeds and removed in every case.

    Example:
        >>> with replaced(Path("model.onnx")) as tmp:  # doctest: +SKIP
        ...     onnx.save(proto, str(tmp))
    """
    path = Path(path)
    fd, name = temp_file(path)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
        olds = leftovers(path, "old-*")
        if olds:
            os.replace(max(olds, key=lambda p: p.stat().st_mtime), path)


def remove_leftovers(path: Path) -> None:
    """Delete what interrupted :func:`write_dir_atomic` calls left beside ``path`` (half-filled
    temporary directories, replaced versions). Only while nothing else writes ``path``."""
    recover_dir(path)
    for leftover in leftovers(path, "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def leftovers(path: Path, pattern: str) -> list[Path]:
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
