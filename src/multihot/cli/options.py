"""Command-line options made from the config dataclasses: one field with its docstring is one
flag with its help, so adding a training option touches only :mod:`multihot.core.config`.

A field ``head_lr: float | None`` of :class:`multihot.core.config.TrainConfig` becomes
``--head-lr FLOAT``; a ``bool`` field ``--name/--no-name``; a ``list[str]`` field a comma-separated
string. Every generated option defaults to "not given" (None), so values from ``--config FILE``
apply unless the flag is on the command line; the help shows the dataclass default.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

from multihot.core.config import field_docs


@dataclasses.dataclass(frozen=True)
class ConfigOption:
    """One generated option: the field it sets and how the command line spells it."""

    name: str
    flag: str
    annotation: Any
    is_list: bool


def _base_type(hint: Any) -> tuple[Any, bool]:
    """``(click-friendly type, is_list)`` for a field's type hint (``X | None`` unwrapped)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        hint = args[0]
    if typing.get_origin(hint) is list:
        return str, True
    return hint, False


def config_options(
    cls: type, panel: str, exclude: tuple[str, ...] = (), show_defaults: bool = True
) -> list[ConfigOption]:
    """The options of every field of dataclass ``cls`` (but ``exclude``), under help ``panel``;
    ``show_defaults=False`` where the default is not the dataclass's (a run's own columns)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    options = []
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        kind, is_list = _base_type(hints[f.name])
        flag = "--" + f.name.replace("_", "-")
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        default = None if f.default is dataclasses.MISSING else f.default
        shown = ",".join(default) if isinstance(default, list) else default
        info = typer.Option(
            *decls,
            help=docs[f.name] + (" Comma-separated." if is_list else ""),
            show_default=str(shown) if shown is not None and show_defaults else False,
            rich_help_panel=panel,
        )
        options.append(ConfigOption(f.name, flag, Annotated[kind | None, info], is_list))
    return options


def with_options(options: list[ConfigOption]) -> Callable:
    """Give a command the ``options`` as flags; it receives the ones given as ``flags`` (a dict of
    field name to value, lists split on commas; None where the flag was not given)."""

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn, eval_str=True)  # the real Annotated types
        kept = [p for p in signature.parameters.values() if p.name != "flags"]
        added = [
            inspect.Parameter(
                o.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=o.annotation
            )
            for o in options
        ]

        @functools.wraps(fn)
        def command(*args: Any, **kwargs: Any) -> Any:
            flags = {}
            for option in options:
                value = kwargs.pop(option.name, None)
                if option.is_list and value is not None:
                    value = [part.strip() for part in value.split(",") if part.strip()]
                flags[option.name] = value
            return fn(*args, flags=flags, **kwargs)

        # inspect.signature (and so Typer) reads __signature__; typeshed declares no such attribute
        command.__signature__ = signature.replace(parameters=[*kept, *added])  # type: ignore[attr-defined]
        return command

    return decorate
