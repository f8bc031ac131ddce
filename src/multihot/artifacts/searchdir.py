"""The search directory that ``multihot search -o DIR`` leaves:

```
study.log           the Optuna study (a journal file; workers on one machine share it)
best-config.yaml    the best trial's configuration, for ``multihot train --config``
```

Running the same search again continues the study in ``study.log``; the best configuration is
rewritten after every invocation.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from multihot.artifacts.rundir import CONFIG
from multihot.core.config import RunConfig
from multihot.core.errors import RunDirError
from multihot.core.files import write_atomic

STUDY_LOG = "study.log"
"""The journal file of the study, when no other storage is given."""
BEST_CONFIG = "best-config.yaml"
"""The best trial's configuration, every config key, in sections as ``config.json`` has them."""


def check_search_dir(path: str | Path) -> Path:
    """``path`` made ready to hold a search (created if missing).

    Raises:
        RunDirError: ``path`` is a file, or a run directory (whose files a search must not mix
            with).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; expected a search directory")
    if (path / CONFIG).is_file():
        raise RunDirError(
            f"{path}: is a run directory (it holds {CONFIG}); give the search its own directory"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_best_config(path: str | Path, config: RunConfig, comment: str = "") -> Path:
    """Write ``config`` as a YAML config file (``multihot train --config`` reads it); ``comment``
    goes on top, one ``#`` line per line. Returns the file's path."""
    path = Path(path)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    body = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
    write_atomic(path, header + body)
    return path
