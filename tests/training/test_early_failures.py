"""A run that fails before its first checkpoint leaves no trap: the corrected command, the same
``train`` into the same directory without ``--resume``, is accepted. A run with training to keep
is still refused (tests/training/test_resume.py)."""

from __future__ import annotations

import logging

import pytest
import torch

from helpers import TINY
from multihot import Classifier
from multihot.core.errors import RunDirError
from multihot.training.checkpoint import RunCheckpoints

# 8 toy texts in batches of 4: 2 steps an epoch, an evaluation (and a checkpoint) each epoch.
RUN = dict(epochs=1, batch_size=4, **TINY)


def fail_in_first_step(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def fail_at_first_evaluation(self, model):
    raise ValueError("bad validation data, found at the first evaluation")


@pytest.mark.parametrize(
    ("target", "failure"),
    [
        ("multihot.training.loop._training_loss", fail_in_first_step),
        ("multihot.training.validation.Validator.__call__", fail_at_first_evaluation),
    ],
    ids=["out of memory in the first step", "bad data at the first evaluation"],
)
def test_a_run_that_fails_before_its_first_checkpoint_leaves_no_trap(
    target, failure, toy_file, tmp_path, monkeypatch, caplog
):
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(target, failure)
        with pytest.raises((torch.OutOfMemoryError, ValueError)):
            Classifier.train(toy_file, toy_file, output=out, **RUN)
    assert RunCheckpoints(out).exists() and not RunCheckpoints(out).resumable()
    with caplog.at_level(logging.INFO, logger="multihot.training.checkpoint"):
        Classifier.train(toy_file, toy_file, output=out, **RUN)
    assert "stopped before its first checkpoint (nothing to resume)" in caplog.text
    assert (out / "config.json").exists() and not (out / "checkpoints").exists()


def _started(run) -> RunCheckpoints:
    """What a run killed before its first checkpoint leaves: ``checkpoints/run.json`` alone."""
    checkpoints = RunCheckpoints(run)
    checkpoints.start({"config": {}})
    return checkpoints


def test_what_a_kill_before_the_first_checkpoint_leaves_is_replaced(tmp_path):
    checkpoints = _started(tmp_path / "run")
    # A kill while the first checkpoint was being written: its half-filled temporary directory.
    (checkpoints.directory / "member-0" / ".last.abc.tmp").mkdir(parents=True)
    checkpoints.refuse_unfinished()


@pytest.mark.parametrize(
    "kept",
    ["member-0/last", "member-0/result", "member-0/.last.old-123", "member-1/.result.old-45"],
)
def test_checkpoints_with_training_to_keep_are_refused(kept, tmp_path):
    """A member's state, a finished member, or either beside its place after a kill in the
    middle of replacing it."""
    checkpoints = _started(tmp_path / "run")
    (checkpoints.directory / kept).mkdir(parents=True)
    (checkpoints.directory / kept / "state.json").write_text("{}")
    assert checkpoints.resumable()
    with pytest.raises(RunDirError, match=r"holds an unfinished training run.*--resume"):
        checkpoints.refuse_unfinished()
