"""User-facing errors.

Everything a user can get wrong (a missing file, a bad column, a corrupt run directory) raises a
:class:`MultihotError` whose message is one line naming the file, row or column and what was
expected. The CLI prints that line and exits with code 2; library callers can catch it.
"""

from __future__ import annotations


class MultihotError(ValueError):
    """A problem with the user's input, shown as one line without a traceback."""


class DataError(MultihotError):
    """A data file that cannot be read as texts and labels."""


class RunDirError(MultihotError):
    """A run directory with missing or corrupt files."""


class ConfigError(MultihotError):
    """An unknown or invalid configuration value."""


class EncoderError(MultihotError):
    """An encoder that cannot be loaded (unknown name, no network, bad directory)."""


class ExportError(MultihotError):
    """A run that cannot be exported, or an export that fails its parity check."""
