"""The report's fixtures: report inputs built from synthetic arrays (no model is trained)."""

from __future__ import annotations

import numpy as np
import pytest

from multihot.report.inputs import ReportInputs
from multihot.scoring.metrics import compute_metrics
from multihot.scoring.thresholds import best_f1_threshold


def synthetic_inputs(
    n_texts: int = 200,
    num_labels: int = 5,
    history: int = 3,
    calibrated: bool = False,
    members: int = 1,
    seed: int = 0,
) -> ReportInputs:
    """Report inputs whose probabilities follow the targets: labels of falling frequency (the
    first three going together), per-label F1-optimal thresholds, overconfident probabilities
    (calibrated ones, and those as ``uncalibrated_probs``, when ``calibrated``), and a fake
    history of ``history`` evaluations per seed-ensemble member."""
    rng = np.random.default_rng(seed)
    # Each text's log-odds of each label; targets are drawn from them, so sigmoid(logits) is
    # calibrated and sigmoid(2.5 * logits) overconfident.
    offsets = -1.0 - 1.5 * np.log(np.arange(1, num_labels + 1))
    logits = offsets + rng.normal(0, 2.5, (n_texts, num_labels))
    if num_labels > 2:  # labels 0 and 1 go together, label 2 shares a cause with label 0
        shared = rng.normal(0, 1.5, n_texts)
        logits[:, :3] += shared[:, None]
    targets = (rng.random((n_texts, num_labels)) < 1 / (1 + np.exp(-logits))).astype(np.int8)
    uncalibrated = 1 / (1 + np.exp(-2.5 * logits))
    probs = 1 / (1 + np.exp(-logits)) if calibrated else uncalibrated
    names = [f"label_{j}" for j in range(num_labels)]
    thresholds = np.array(
        [best_f1_threshold(targets[:, j], probs[:, j])[0] for j in range(num_labels)]
    )
    records = [
        {
            **({"member": m} if members > 1 else {}),
            "step": 10 * (k + 1),
            "epoch": float(k + 1),
            "train_loss": 0.5 / (k + 1) + 0.01 * m,
            "val_loss": 0.55 / (k + 1) + 0.02 * m,
            "macro_f1": 0.4 + 0.1 * k - 0.01 * m,
            "micro_f1": 0.5 + 0.1 * k,
            "seconds": 3.0 * (k + 1),
        }
        for m in range(members)
        for k in range(history)
    ]
    texts = [f"text number {i} about {names[i % num_labels]}" for i in range(n_texts)]
    return ReportInputs(
        title="synthetic-run",
        source="synthetic.jsonl",
        label_names=names,
        texts=texts,
        targets=targets,
        probs=probs,
        thresholds=thresholds,
        metrics=compute_metrics(targets, probs, thresholds, names),
        config={
            "kind": "transformer",
            "model": {"encoder": "scratch-mini", "pooling": "mean", "ensemble": members},
            "train": {"epochs": history, "lr": 4e-4, "metric": "macro_f1", "seed": 42},
            "data": {"text_col": "text", "labels_col": "labels", "label_cols": None},
            "encoder_config": {"hidden_size": 32, "num_hidden_layers": 2},
            "num_labels": num_labels,
        },
        history=records,
        train_seconds=3.0 * history if history else None,
        uncalibrated_probs=uncalibrated if calibrated else None,
    )


@pytest.fixture()
def make_inputs():
    """:func:`synthetic_inputs`, for tests to build the inputs they need."""
    return synthetic_inputs
