"""The ``multihot`` command line: a thin layer over the library."""

from multihot.cli.app import app, main

__all__ = ["app", "main"]
