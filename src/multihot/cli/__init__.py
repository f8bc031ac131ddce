"""The ``multihot`` command line: a thin layer over the library, one module per verb.

Importing this package registers every verb on :data:`multihot.cli.app.app`.
"""

from multihot.cli import baseline, evaluate, export, predict, serve, train, tune  # noqa: F401
from multihot.cli.app import app, main

__all__ = ["app", "main"]
