"""Partial labels in the report: the per-label table says how many texts each label was labelled
for, and a fully labelled run's table is as it was."""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from multihot.report.html import render_report
from multihot.scoring.metrics import compute_metrics


def label_table(page: str) -> str:
    return re.search(r'<table id="label-table".*?</table>', page, re.S).group(0)


def headings(table: str) -> list[str]:
    return re.findall(r"<th[^>]*>([^<]*)</th>", table)


def test_the_label_table_shows_the_known_texts_of_each_label(make_inputs):
    inputs = make_inputs(200, 4)
    assert "known" not in headings(label_table(render_report(inputs)))
    known = np.random.default_rng(0).random(inputs.targets.shape) < 0.7
    metrics = compute_metrics(
        inputs.targets * known, inputs.probs, inputs.thresholds, inputs.label_names, known=known
    )
    partial = dataclasses.replace(inputs, targets=inputs.targets * known, metrics=metrics)
    table = label_table(render_report(partial))
    names = headings(table)
    assert names[:3] == ["label", "support", "known"]
    first = re.search(r"<tbody><tr[^>]*>(.*?)</tr>", table, re.S).group(1)
    values = re.findall(r'data-value="([^"]*)"', first)
    assert len(values) == len(names) - 1  # every column but the label's
    assert int(float(values[1])) == known[:, 0].sum()
    assert int(float(values[0])) == (inputs.targets[:, 0] * known[:, 0]).sum()
