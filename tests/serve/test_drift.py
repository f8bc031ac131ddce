"""Drift you can alert on: per label, ``/metrics`` counts how often the served texts get it and
sums its probability, beside the same rates on the run's validation rows, which ``/v1/model``
reports too. Real server subprocesses: a transformer run, a baseline run whose label names need
escaping, and a run without validation rows."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from helpers import TOY_LABELS, TOY_TEXTS, Server, copy_run, invoke, serving, write_jsonl

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

SAMPLE = re.compile(r'^(multihot_label_\w+)\{label="((?:[^"\\\n]|\\.)*)"\} (\S+)$')
"""One sample of a per-label metric in Prometheus's text format."""
ODD_NAMES = {"joy": 'say "joy"', "love": "back\\slash", "anger": "new\nline", "sadness": "trist é"}
"""Label names that Prometheus label values must escape (quote, backslash, newline)."""


def unescape(value: str) -> str:
    """A label value as Prometheus's text format escapes it, read back."""
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value)


def label_samples(server: Server) -> dict[str, dict[str, float]]:
    """``{metric: {label name: value}}`` of the per-label metrics in ``/metrics``; every line of
    those metrics must be a well-formed sample."""
    status, _, text = server.get("/metrics")
    assert status == 200
    samples: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if line.startswith("multihot_label_"):
            match = SAMPLE.match(line)
            assert match, f"not a sample: {line!r}"
            samples.setdefault(match[1], {})[unescape(match[2])] = float(match[3])
    return samples


@pytest.fixture(scope="module")
def server(toy_run):
    _, run = toy_run
    with serving(run, "--precision", "fp32") as server:
        yield server


@pytest.fixture(scope="module")
def odd_run(tmp_path_factory) -> Path:
    """A baseline run on the toy texts whose label names need escaping."""
    data = tmp_path_factory.mktemp("odd")
    labels = [[ODD_NAMES[name] for name in row] for row in TOY_LABELS]
    path = write_jsonl(data / "odd.jsonl", TOY_TEXTS, labels)
    out = data / "run"
    result = invoke("baseline", path, "--val", path, "-o", out, "--min-df", 1, "--C", 100)
    assert result.exit_code == 0, result.output
    return out


def test_served_texts_are_counted_per_label(server, toy_run):
    clf, _ = toy_run
    before = label_samples(server)
    assert set(before["multihot_label_predicted_total"]) == set(clf.label_names)
    status, _, native = server.post({"texts": TOY_TEXTS, "return_probs": True})
    assert status == 200
    status, _, tei = server.post({"inputs": TOY_TEXTS[:3]}, "/predict")
    assert status == 200
    after = label_samples(server)
    delta = {m: {n: v - before[m][n] for n, v in after[m].items()} for m in after}
    for name in clf.label_names:
        tei_items = [item for items in tei for item in items if item["label"] == name]
        fired = sum(name in p["labels"] for p in native["predictions"])
        fired += sum(item["predicted"] for item in tei_items)
        total = sum(p["probs"][name] for p in native["predictions"])
        total += sum(item["score"] for item in tei_items)
        assert delta["multihot_label_predicted_total"][name] == fired
        assert delta["multihot_label_probability_sum"][name] == pytest.approx(total, abs=1e-6)
        assert delta["multihot_label_probability_count"][name] == len(TOY_TEXTS) + 3
    text = server.get("/metrics")[2]
    assert "# TYPE multihot_label_probability summary" in text
    assert "# TYPE multihot_label_predicted_total counter" in text


def test_the_validation_rates_are_the_runs_predictions_on_its_validation_rows(server, toy_run):
    """The toy run was validated on the toy texts: its rates are its validation logits as it
    predicts them (calibrated, its thresholds), in /v1/model and as gauges in /metrics; close to
    the library's predictions of the same texts (the run kept logits of its default precision,
    here bf16, which its steep calibration magnifies)."""
    from multihot.artifacts.validation import read_validation
    from multihot.scoring.calibration import calibrated
    from multihot.scoring.probabilities import sigmoid

    clf, run = toy_run
    rates = server.get("/v1/model")[2]["validation_rates"]
    assert rates["texts"] == len(TOY_TEXTS)
    kept = read_validation(run, clf.labels)
    probs = sigmoid(calibrated(kept.logits, clf.calibration))
    decisions = clf.thresholds.apply(probs)
    library = clf.predict_proba(TOY_TEXTS, precision="fp32")
    gauges = label_samples(server)
    for j, name in enumerate(clf.label_names):
        rate = rates["labels"][name]
        assert rate["predicted_rate"] == decisions[:, j].mean()
        assert rate["mean_probability"] == pytest.approx(probs[:, j].mean(), abs=1e-6)
        assert rate["mean_probability"] == pytest.approx(library[:, j].mean(), abs=0.01)
        assert gauges["multihot_label_validation_predicted_ratio"][name] == rate["predicted_rate"]
        assert gauges["multihot_label_validation_mean_probability"][name] == pytest.approx(
            rate["mean_probability"], rel=1e-12
        )


def test_a_baseline_run_with_names_to_escape(odd_run):
    from multihot import Classifier

    linear = Classifier.load(odd_run)
    assert set(linear.label_names) == set(ODD_NAMES.values())
    server = Server(odd_run)
    try:
        status, _, answer = server.post({"texts": TOY_TEXTS, "return_probs": True})
        assert status == 200
        samples = label_samples(server)
        for metric in (
            "multihot_label_predicted_total",
            "multihot_label_probability_sum",
            "multihot_label_validation_predicted_ratio",
        ):
            assert set(samples[metric]) == set(linear.label_names), metric
        fired = samples["multihot_label_predicted_total"]
        assert fired == {n: sum(n in p["labels"] for p in answer["predictions"]) for n in fired}
        rates = server.get("/v1/model")[2]["validation_rates"]
        probs = linear.predict_proba(TOY_TEXTS)
        for j, name in enumerate(linear.label_names):
            assert rates["labels"][name]["mean_probability"] == pytest.approx(
                probs[:, j].mean(), abs=1e-5
            )
    finally:
        assert server.stop() == 0


def test_a_run_without_validation_rows_says_so(toy_run, tmp_path):
    from multihot.artifacts.rundir import VALIDATION

    _, run = toy_run
    bare = copy_run(run, tmp_path / "bare")
    (bare / VALIDATION).unlink()
    server = Server(bare, "--precision", "fp32")
    try:
        assert server.get("/v1/model")[2]["validation_rates"] is None
        assert server.post({"texts": TOY_TEXTS[:2]})[0] == 200
        samples = label_samples(server)
        assert not any("validation" in metric for metric in samples)
        assert sum(samples["multihot_label_probability_count"].values()) == 2 * len(
            samples["multihot_label_probability_count"]
        )
    finally:
        assert server.stop() == 0


def test_validation_rates_of_arrays():
    from multihot.serve.drift import LabelRates

    probs = np.array([[0.9, 0.1], [0.6, 0.3], [0.2, 0.8]], dtype=np.float32)
    rates = LabelRates.of(probs, probs >= np.array([0.5, 0.5])).to_dict(["a", "b"])
    assert rates["texts"] == 3 and list(rates["labels"]) == ["a", "b"]
    assert rates["labels"]["a"]["predicted_rate"] == pytest.approx(2 / 3)
    assert rates["labels"]["b"]["predicted_rate"] == pytest.approx(1 / 3)
    assert rates["labels"]["a"]["mean_probability"] == pytest.approx(1.7 / 3, abs=1e-6)
    assert rates["labels"]["b"]["mean_probability"] == pytest.approx(0.4, abs=1e-6)
