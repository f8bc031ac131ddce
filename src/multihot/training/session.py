"""A training session: :func:`fit` builds a run, and :class:`TrainingSession` consumes the loop's
events. It keeps the best weights, writes a checkpoint after each evaluation, tells the callback
and the trackers, and ends the run when early stopping says so.

Nothing here trains: :func:`multihot.training.loop.train_steps` does, and knows none of this.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from multihot.core.config import TrainConfig
from multihot.data.batching import TokenizedDataset
from multihot.modeling.model import MultiLabelModel
from multihot.scoring.metrics import metric_is_better
from multihot.training.checkpoint import TrainingCheckpoint
from multihot.training.loop import EvalEvent, StepEvent, train_steps
from multihot.training.result import TrainResult
from multihot.training.setup import build_accelerator, prepare
from multihot.training.state import LoopState
from multihot.training.tracking import Tracking
from multihot.training.tracking import log as tracking_log
from multihot.training.tracking import start as tracking_start
from multihot.training.validation import Validator

logger = logging.getLogger(__name__)

# On a GPU the loss shown by the progress callback is read back every this many steps, not every
# step: each read stalls the host until the GPU has finished.
LOSS_SYNC_EVERY = 25


class TrainCallback(Protocol):
    """What a session reports; the CLI draws a progress bar from it, tests can record it."""

    def on_train_start(self, total_steps: int, steps_per_epoch: int) -> None: ...

    def on_step(self, step: int, loss: float, samples_per_second: float) -> None: ...

    def on_evaluate(self, record: dict[str, Any]) -> None: ...

    def on_train_end(self) -> None: ...


@dataclass(frozen=True)
class Selection:
    """Which evaluation is best, and when to stop looking for a better one."""

    metric: str = "macro_f1"
    patience: int = 0
    """Stop after this many evaluations without improvement; 0: never."""


def fit(
    model: MultiLabelModel,
    loss_fn: torch.nn.Module,
    train: TokenizedDataset,
    val: TokenizedDataset,
    config: TrainConfig,
    *,
    tokenizer,
    label_names: list[str],
    callback: TrainCallback | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    tracking: Tracking | None = None,
    batch_tokens: int = 16384,
) -> TrainResult:
    """Train ``model`` on ``train``, evaluate on ``val``, keep the best weights by ``config.metric``.

    The model and loss should be built after seeding (``accelerate.utils.set_seed``) so a run
    repeats exactly. ``tokenizer`` gives the padding id and, with ``config.mask_prob``, the mask
    and special tokens (see :mod:`multihot.modeling.masking`). Evaluation tunes thresholds on
    ``val`` with ``config.thresholds`` before computing the selection metric, the same way the
    final thresholds are chosen.

    With ``checkpoint`` (a directory), the loop state is saved there after every evaluation
    (:class:`multihot.training.checkpoint.TrainingCheckpoint`); with ``resume`` too, training
    continues from the state saved there, exactly where the interrupted run was.

    With ``config.report_to``, every evaluation is also logged to those trackers
    (:mod:`multihot.training.tracking`) under ``tracking``'s name.

    Documents of windows (``long_text="chunk"``) train in batches of ``config.batch_size``
    documents; they are evaluated packed up to ``batch_tokens`` ids per batch.
    """
    accelerator, precision = build_accelerator(config)
    tracked = tracking_start(accelerator, config, tracking)
    parts, state = prepare(
        model,
        loss_fn,
        train,
        val,
        config,
        accelerator,
        tokenizer=tokenizer,
        batch_tokens=batch_tokens,
    )
    saver = _checkpoint(accelerator, checkpoint, parts.plan.steps_per_epoch)
    if saver is not None and resume:
        saver.restore(state)
        logger.info("resumed at step %d of %d", state.step, parts.plan.total_steps)
    session = TrainingSession(
        accelerator,
        Selection(config.metric, config.patience),
        checkpoint=saver,
        # One progress bar and one log, from the main process.
        callback=callback if accelerator.is_main_process else None,
    )
    validate = Validator(
        val, parts.val_loader, accelerator, parts.loss_fn, label_names, config.threshold_settings()
    )
    session.run(
        state,
        train_steps(parts, state, validate),
        parts.plan.total_steps,
        parts.plan.steps_per_epoch,
    )
    if tracked:
        accelerator.end_training()
    accelerator.free_memory()
    return TrainResult(
        state_dict=state.best_weights,
        best=state.best,
        history=state.history,
        val_probs=state.best_probs,
        stopped_early=state.stopped,
        precision=precision,
    )


def _checkpoint(accelerator, directory, steps_per_epoch: int) -> TrainingCheckpoint | None:
    if directory is None:
        return None
    if not TrainingCheckpoint.supported(accelerator):
        logger.warning(
            "no checkpoints with %s: this run cannot be resumed", accelerator.distributed_type
        )
        return None
    return TrainingCheckpoint(directory, accelerator, steps_per_epoch=steps_per_epoch)


class TrainingSession:
    """Consumes the loop's events for one run.

    Args:
        accelerator: the run's (the trackers it logs to).
        selection: the metric that picks the best evaluation, and early stopping's patience.
        checkpoint: where the loop state is saved after each evaluation, or None.
        callback: told about the start, each step, each evaluation and the end, or None.
    """

    def __init__(
        self,
        accelerator,
        selection: Selection,
        *,
        checkpoint: TrainingCheckpoint | None = None,
        callback: TrainCallback | None = None,
    ):
        self.accelerator, self.selection = accelerator, selection
        self.checkpoint, self.callback = checkpoint, callback

    def run(
        self,
        state: LoopState,
        events: Iterable[StepEvent | EvalEvent],
        total_steps: int,
        steps_per_epoch: int,
    ) -> None:
        """Go through ``events`` until they end or early stopping ends the run (a resumed run that
        it had ended takes no step)."""
        if self.callback:
            self.callback.on_train_start(total_steps, steps_per_epoch)
        if not state.stopped:
            self._consume(state, events)
        if state.stopped:
            logger.info(
                "early stopping after %d evaluations without improvement", self.selection.patience
            )
        if self.callback:
            self.callback.on_train_end()

    def _consume(self, state: LoopState, events: Iterable[StepEvent | EvalEvent]) -> None:
        shown = float("nan")
        for event in events:
            if isinstance(event, StepEvent):
                shown = self._on_step(event, shown)
            elif self._on_evaluation(state, event):
                return

    def _on_step(self, event: StepEvent, shown: float) -> float:
        """Tell the callback; the loss shown is read back from a GPU only now and then."""
        if self.callback is None:
            return shown
        if (
            self.accelerator.device.type == "cpu"
            or event.step % LOSS_SYNC_EVERY == 0
            or event.step == 1
        ):
            shown = event.loss.item()
        self.callback.on_step(event.step, shown, event.samples_per_second)
        return shown

    def _on_evaluation(self, state: LoopState, event: EvalEvent) -> bool:
        """Keep the record (and the weights if best), save the state, report; True to stop."""
        record, metric = event.record, self.selection.metric
        state.history.append(record)
        if not state.best or metric_is_better(metric, record[metric], state.best[metric]):
            state.best, state.best_probs = record, event.probs
            state.best_weights = {
                k: v.detach().to("cpu", copy=True) for k, v in event.weights().items()
            }
            state.stale = 0
        else:
            state.stale += 1
        patience = self.selection.patience
        state.stopped = bool(patience) and state.stale >= patience
        if self.checkpoint is not None:
            self.checkpoint.save(state)
        if self.callback:
            self.callback.on_evaluate(record)
        if self.accelerator.trackers:
            tracking_log(self.accelerator, record, state.step)
        # With a callback the evaluation is shown already (the CLI prints a line per evaluation).
        logger.log(
            logging.DEBUG if self.callback else logging.INFO,
            "step %d: %s %.4f (best %.4f)",
            state.step,
            metric,
            record[metric],
            state.best[metric],
        )
        return state.stopped
