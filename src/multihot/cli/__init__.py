"""The ``multihot`` command line: a thin layer over the library, one module per verb.

Importing this package registers every verb on :data:`multihot.cli.app.app`. Every verb module
imports the library inside its functions, to keep ``multihot --help`` fast (no torch, transformers
or pandas at start-up); ``tests/test_imports.py`` exempts ``cli/`` for that reason.
"""

from multihot.cli import (  # noqa: F401
    audit,
    baseline,
    cv,
    evaluate,
    explain,
    export,
    predict,
    report,
    search,
    serve,
    suggest,
    train,
    tune,
)
from multihot.cli.app import app, main

__all__ = ["app", "main"]
