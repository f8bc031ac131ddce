"""From a run (and, optionally, labelled data) to :class:`ReportInputs`, and to a report file.

Without data, a report draws from the run's own validation rows (validation.jsonl: the texts, labels
and logits its thresholds were tuned on), so it costs no forward pass. With data, the run predicts
it first.

Example:
    >>> write_run_report("runs/emotions", "report.html")  # doctest: +SKIP
    >>> write_run_report("runs/emotions", "report.html", data="test.jsonl")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from multihot.artifacts.validation import read_validation
from multihot.classifier import Classifier
from multihot.core.errors import RunDirError
from multihot.data.prepare import DataLike
from multihot.report.html import write_report
from multihot.report.inputs import ReportInputs
from multihot.scoring.calibration import calibrated
from multihot.scoring.probabilities import sigmoid

VALIDATION_SOURCE = "the run's validation data"


def train_seconds(history: list[dict]) -> float | None:
    """Training time from history.jsonl: the last evaluation's clock (summed over the members
    of a seed ensemble, which train one after another)."""
    last: dict[int, float] = {}
    for record in history:
        if isinstance(record.get("seconds"), (int, float)):
            last[record.get("member", 0)] = float(record["seconds"])
    return sum(last.values()) if last else None


def report_inputs(
    clf: Classifier,
    run: str | Path,
    data: DataLike | None = None,
    batch_size: int = 64,
    precision: str = "auto",
) -> ReportInputs:
    """What a report of ``clf`` (loaded from ``run``) on ``data`` draws; without ``data``, on the
    run's validation rows.

    Raises:
        RunDirError: no ``data`` and the run has no validation.jsonl (trained by an older multihot).
    """
    run = Path(run)
    if data is None:
        validation = read_validation(run, clf.labels)
        if validation is None:
            raise RunDirError(
                f"{run}: no validation.jsonl (the run was trained before multihot kept its "
                "validation rows); give the labelled data to report on: multihot report RUN DATA"
            )
        texts, targets, logits = validation.texts, validation.targets, validation.logits
        source, known = VALIDATION_SOURCE, validation.known
    else:
        dataset, targets = clf.labelled(data)
        texts, source = list(dataset.texts), dataset.source
        known = clf.labels.encode_known(dataset.known, dataset.source)
        logits = clf.uncalibrated_logits(texts, batch_size, precision)
    raw = sigmoid(logits)
    calibration = clf.calibration
    probs = sigmoid(calibrated(logits, calibration))
    return ReportInputs(
        title=run.name,
        source=source,
        label_names=clf.label_names,
        texts=texts,
        targets=np.asarray(targets, dtype=np.int8),
        probs=probs,
        thresholds=clf.thresholds.values,
        metrics=clf.score(texts, targets, probs, known),
        config={"kind": clf.kind, **clf.config.to_dict()},
        history=clf.history,
        train_seconds=train_seconds(clf.history),
        uncalibrated_probs=None if calibration is None else raw,
        decisions=clf.thresholds.apply(probs),
    )


def write_run_report(
    run: str | Path,
    output: str | Path,
    data: DataLike | None = None,
    batch_size: int = 64,
    precision: str = "auto",
) -> Path:
    """Write the HTML report of the run directory ``run`` (on ``data``, or its validation rows)
    to ``output``, all or nothing; the path written."""
    clf = Classifier.load(run)
    inputs = report_inputs(clf, run, data, batch_size, precision)
    write_report(inputs, Path(output))
    return Path(output)
