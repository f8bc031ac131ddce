"""The search directory that ``multihot search -o DIR`` leaves:

```
study.log           the Optuna study (a journal file; workers on one machine share it)
best-config.yaml    the best trial's configuration, for ``multihot train --config``
```

Running the same search again continues the study in ``study.log``; the best configuration is
rewritten after every invocation. A directory holding anything else is refused, so a search never
replaces or mixes with a user's files.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from multihot.artifacts.rundir import CONFIG, listing
from multihot.core.config import RunConfig
from multihot.core.errors import RunDirError
from multihot.core.files import write_atomic

STUDY_LOG = "study.log"
"""The journal file of the study, when no other storage is given."""
BEST_CONFIG = "best-config.yaml"
"""The best trial's configuration, every config key, in sections as ``config.json`` has them."""


JOURNAL_LOCKS = (f"{STUDY_LOG}.lock",)
"""What Optuna's file lock leaves beside the journal while it is held (and, renamed, as it lets go)."""
BEST_CONFIG_HEADER = "# multihot search"
"""How the best configuration multihot writes begins, and how a user's file of that name does not."""
_FIRST_LINE_BYTES = 1 << 20


def _is_search_entry(name: str) -> bool:
    """A name ``multihot search`` writes in its directory, or what a kill left while writing one
    (a ``.NAME.XXXX.tmp`` of :func:`~multihot.core.files.temp_file`, a lock of the journal)."""
    if name in (STUDY_LOG, BEST_CONFIG, *JOURNAL_LOCKS):
        return True
    if name.startswith(f"{STUDY_LOG}.lock") and name.endswith(".rename"):
        return True
    return name.startswith(f".{BEST_CONFIG}.") and name.endswith(".tmp")


def check_search_dir(path: str | Path, create: bool = True) -> Path:
    """``path`` checked to hold a search, and created if missing (with ``create``).

    A new or empty directory, or one holding only what ``multihot search`` writes: its journal
    (checked to be one, see :func:`check_journal`) and a ``best-config.yaml`` that multihot wrote.

    Raises:
        RunDirError: ``path`` is a file, a run directory, or a directory holding anything else
            (named), so a search would replace or mix with the user's files.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; expected a search directory")
    if (path / CONFIG).is_file():
        raise RunDirError(
            f"{path}: is a run directory (it holds {CONFIG}); give the search its own directory"
        )
    names = sorted(entry.name for entry in path.iterdir()) if path.is_dir() else []
    foreign = [name for name in names if not _is_search_entry(name)]
    if foreign:
        shown = listing(foreign)
        raise RunDirError(
            f"{path}: holds files that are not part of a multihot search ({shown}); give the "
            "search a new or empty directory, or the directory of an earlier search"
        )
    best = path / BEST_CONFIG
    if best.exists() and not _starts_with(best, BEST_CONFIG_HEADER):
        raise RunDirError(
            f"{best}: not a configuration multihot search wrote (it would be replaced); give the "
            "search a new or empty directory"
        )
    if (path / STUDY_LOG).exists():
        check_journal(path / STUDY_LOG)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def _starts_with(path: Path, prefix: str) -> bool:
    if not path.is_file():  # a FIFO would block, a directory cannot be replaced by a file
        return False
    with path.open("rb") as fh:
        return fh.read(len(prefix.encode())) == prefix.encode()


def check_journal(path: str | Path) -> Path:
    """Refuse a file that is not an Optuna journal, before Optuna appends to it.

    A journal is a regular file, empty (a study just created) or whose first line is a JSON object
    with Optuna's ``op_code`` and ``worker_id``. A missing file is fine: Optuna creates it.

    Raises:
        RunDirError: naming the file and what was found.
    """
    path = Path(path)
    if not path.exists():
        return path
    if not path.is_file():
        raise RunDirError(f"{path}: not a regular file; expected an Optuna journal file")
    with path.open("rb") as fh:
        first = fh.readline(_FIRST_LINE_BYTES)
    if not first:
        return path
    try:
        record = json.loads(first)
    except ValueError:  # not UTF-8, or not JSON
        record = None
    journal = isinstance(record, dict) and isinstance(record.get("op_code"), int)
    if not (journal and "worker_id" in record):
        raise RunDirError(
            f"{path}: not an Optuna journal (its first line is not a journal record); a search "
            "appends to its storage file, so it is refused: give a new file or an earlier "
            "search's journal"
        )
    return path


def write_best_config(path: str | Path, config: RunConfig, comment: str = "") -> Path:
    """Write ``config`` as a YAML config file (``multihot train --config`` reads it); ``comment``
    goes on top, one ``#`` line per line, after :data:`BEST_CONFIG_HEADER` unless it begins with
    it. Returns the file's path."""
    path = Path(path)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    if not header.startswith(BEST_CONFIG_HEADER):  # how check_search_dir knows the file is ours
        header = f"{BEST_CONFIG_HEADER}\n{header}"
    path.parent.mkdir(parents=True, exist_ok=True)  # a study shown from another storage
    body = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
    write_atomic(path, header + body)
    return path
