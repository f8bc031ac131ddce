"""The ``multihot`` command line: a thin layer over the library, one module per verb.

Importing this package registers every verb on :data:`multihot.cli.app.app`.
"""

from multihot.cli import (  # noqa: F401
    baseline,
    cv,
    evaluate,
    explain,
    export,
    predict,
    report,
    search,
    serve,
    train,
    tune,
)
from multihot.cli.app import app, main

__all__ = ["app", "main"]
