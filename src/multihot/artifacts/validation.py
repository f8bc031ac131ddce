"""validation.jsonl: the rows a run's thresholds were tuned on, with the model's logits for them.

One JSON object per line: ``{"text": ..., "labels": [names], "logits": [one per label]}``, in the
order of labels.json; with partial labels, a row labelled for some labels only also has
``"labels_known": [names]`` (a row without it is labelled for every label). The logits are uncalibrated, so a report can show calibration before and
after, and a later calibration can be judged on the same rows. ``multihot report RUN`` draws from
this file when no data is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from multihot.artifacts.rundir import VALIDATION, check_regular
from multihot.core.errors import MultihotError, RunDirError
from multihot.core.files import strict_loads, write_atomic
from multihot.data.labels import KNOWN_COL, LabelSet

LOGIT_DIGITS = 6
"""Significant digits kept per logit: well under the 1e-3 that bf16 prediction already moves."""


@dataclass
class ValidationPredictions:
    """Validation rows as training saw them.

    Attributes:
        texts: the texts.
        targets: ``(n_texts, n_labels)`` 0/1.
        logits: ``(n_texts, n_labels)`` float32, uncalibrated.
        known: ``(n_texts, n_labels)`` bool, the labelled pairs (partial labels); None: all.
    """

    texts: list[str]
    targets: np.ndarray
    logits: np.ndarray
    known: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.texts)
        if self.targets.shape[0] != n or self.logits.shape != self.targets.shape:
            raise MultihotError(
                f"validation predictions: {n} texts, targets {self.targets.shape}, "
                f"logits {self.logits.shape}"
            )
        if self.known is not None and self.known.shape != self.targets.shape:
            raise MultihotError(
                f"validation predictions: targets {self.targets.shape}, known {self.known.shape}"
            )


def validation_text(validation: ValidationPredictions, labels: LabelSet) -> str:
    """The file's contents."""
    lines = []
    for i, (text, row, logits) in enumerate(
        zip(validation.texts, validation.targets, validation.logits, strict=True)
    ):
        record = {
            "text": text,
            "labels": [labels.names[j] for j in np.flatnonzero(row)],
            "logits": [float(f"{z:.{LOGIT_DIGITS}g}") for z in logits.tolist()],
        }
        if validation.known is not None and not validation.known[i].all():
            record[KNOWN_COL] = [labels.names[j] for j in np.flatnonzero(validation.known[i])]
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


def write_validation(directory: Path, validation: ValidationPredictions, labels: LabelSet) -> None:
    write_atomic(Path(directory) / VALIDATION, validation_text(validation, labels))


def read_validation(run: Path, labels: LabelSet) -> ValidationPredictions | None:
    """The run's validation rows, or None when it has none (trained before they were kept)."""
    path = Path(run) / VALIDATION
    if not path.exists():
        return None
    check_regular(path)
    texts, targets, logits, known = [], [], [], []
    index = {name: j for j, name in enumerate(labels.names)}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = strict_loads(line)
                row = np.zeros(len(labels), dtype=np.int8)
                row[[index[name] for name in record["labels"]]] = 1
                values = np.asarray(record["logits"], dtype=np.float32)
                text = record["text"]
                labelled = np.ones(len(labels), dtype=bool)
                if record.get(KNOWN_COL) is not None:
                    labelled[:] = False
                    labelled[[index[name] for name in record[KNOWN_COL]]] = True
            except (ValueError, KeyError, TypeError, IndexError):
                raise RunDirError(
                    f"{path}: line {n}: not a validation record of this run"
                ) from None
            if values.shape != (len(labels),) or not isinstance(text, str):
                raise RunDirError(f"{path}: line {n}: expected {len(labels)} logits and a text")
            texts.append(text)
            targets.append(row)
            logits.append(values)
            known.append(labelled)
    mask = np.array(known, dtype=bool).reshape(-1, len(labels))
    return ValidationPredictions(
        texts,
        np.array(targets, dtype=np.int8).reshape(-1, len(labels)),
        np.array(logits, dtype=np.float32).reshape(-1, len(labels)),
        None if mask.all() else mask,
    )
