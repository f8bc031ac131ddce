"""A rich progress bar for training: loss, throughput and ETA; silent when stderr is not a terminal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def metric_text(record: dict[str, Any], metric: str) -> str:
    """``metric value`` of an evaluation record, to 4 decimals (``None`` when undefined)."""
    value = record.get(metric)
    return f"{metric} {value if value is None else f'{value:.4f}'}"


ESTIMATE_AFTER = 10
"""Optimiser steps timed before the first estimate of the training time is printed."""


def duration(seconds: float) -> str:
    """``45s``, ``12 min``, ``3.4 h``: a duration as a person reads an estimate."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class RichProgress:
    """A :class:`multihot.training.session.TrainCallback` that draws a bar and prints one line per
    evaluation. Before the first step it says how many optimiser steps the run takes, after the
    first few steps how long that should take, and again after the first evaluation (which adds
    the time evaluations take): lines printed whether or not stderr is a terminal, so a user learns
    early that a run takes hours, not minutes."""

    def __init__(
        self,
        console: Console | None = None,
        metric: str = "macro_f1",
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.console = console or Console(stderr=True)
        self.metric, self.clock = metric, clock
        self.total, self.first_step, self.started = 0, 0, 0.0
        self.evaluated = False
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"),
            TextColumn("{task.fields[rate]:.0f} texts/s"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
            transient=False,
        )
        self.task: Any = None

    def on_train_start(self, total_steps: int, steps_per_epoch: int) -> None:
        self.total, self.first_step, self.evaluated = total_steps, 0, False
        epochs = total_steps // max(1, steps_per_epoch)
        self._say(
            f"{total_steps} optimiser steps ({epochs} epochs of {steps_per_epoch}); "
            f"the time it takes is estimated after {min(ESTIMATE_AFTER, total_steps)}"
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, loss=0.0, rate=0.0)

    def on_step(self, step: int, loss: float, samples_per_second: float) -> None:
        self.progress.update(self.task, completed=step, loss=loss, rate=samples_per_second)
        if not self.first_step:  # a resumed run starts after step 1
            self.first_step, self.started = step, self.clock()
        elif step - self.first_step == ESTIMATE_AFTER:
            self._estimate(step, f"at the pace of {ESTIMATE_AFTER} steps, evaluations not counted")

    def _estimate(self, step: int, basis: str) -> None:
        pace = (self.clock() - self.started) / max(1, step - self.first_step)
        left = self.total - step
        if left > 0:
            self._say(f"about {duration(pace * left)} left for {left} steps ({basis})")

    def _say(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True)

    def on_evaluate(self, record: dict[str, Any]) -> None:
        self.console.print(
            f"epoch {record['epoch']:.2f}  step {record['step']}  train_loss {record['train_loss']:.4f}  "
            f"val_loss {record['val_loss']:.4f}  {metric_text(record, self.metric)}  "
            f"({record['seconds']:.0f}s)",
            highlight=False,
            soft_wrap=True,
        )
        if not self.evaluated and self.first_step:
            self.evaluated = True
            self._estimate(int(record["step"]), "at the pace so far, evaluations counted")

    def on_train_end(self) -> None:
        self.progress.stop()


class NestedProgress:
    """One bar over the outer loop (folds, trials) and under it the bar of the training in
    progress: a :class:`multihot.training.session.TrainCallback` for each training, and
    :meth:`advance` after each outer step. Bars only on a terminal; evaluation lines always.

    Example:
        >>> with NestedProgress(Console(stderr=True), total=5, unit="folds") as progress:  # doctest: +SKIP
        ...     cross_validate("train.jsonl", callback=progress,
        ...                    fold_callback=lambda k, fold: progress.advance(f"fold {k}"))
    """

    def __init__(
        self,
        console: Console | None = None,
        total: int = 1,
        unit: str = "folds",
        metric: str = "macro_f1",
    ):
        self.console = console or Console(stderr=True)
        self.total, self.unit, self.metric = total, unit, metric
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.console.is_terminal,
            transient=False,
        )
        self.outer: Any = None
        self.inner: Any = None

    def __enter__(self) -> NestedProgress:
        self.progress.start()
        self.outer = self.progress.add_task(self.unit, total=self.total, info="")
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def advance(self, info: str = "") -> None:
        """One outer step done; ``info`` is shown beside the bar and printed as a line."""
        self.progress.update(self.outer, advance=1, info=info)
        if info:
            self.console.print(info, highlight=False, soft_wrap=True)

    def on_train_start(self, total_steps: int, steps_per_epoch: int) -> None:
        self.inner = self.progress.add_task("  train", total=total_steps, info="")

    def on_step(self, step: int, loss: float, samples_per_second: float) -> None:
        info = f"loss {loss:.4f}  {samples_per_second:.0f} texts/s"
        self.progress.update(self.inner, completed=step, info=info)

    def on_evaluate(self, record: dict[str, Any]) -> None:
        self.console.print(
            f"  epoch {record['epoch']:.2f}  step {record['step']}  "
            f"val_loss {record['val_loss']:.4f}  {metric_text(record, self.metric)}",
            highlight=False,
            soft_wrap=True,
        )

    def on_train_end(self) -> None:
        if self.inner is not None:
            self.progress.remove_task(self.inner)
            self.inner = None
