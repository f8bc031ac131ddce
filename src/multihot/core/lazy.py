"""Names of a package imported when first used (PEP 562), so that importing the package stays
cheap: ``import multihot`` does not pay for torch, nor ``import multihot.batch`` for Ray."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of ``package`` (its ``__name__``) that import
    each name of ``exports`` (name -> the module defining it) on first use and keep it.

    Example (in a package's ``__init__.py``):
        >>> exports = {"Predictor": "multihot.inference.predictor"}  # doctest: +SKIP
        >>> __getattr__, __dir__ = lazy_exports(__name__, exports)  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(importlib.import_module(exports[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted([*vars(sys.modules[package]), *exports])

    return __getattr__, __dir__
