"""The Prometheus text the server's /metrics renders: counters by label, cumulative histograms."""

from __future__ import annotations

import pytest

from multihot.serve.metrics import Registry


def parse(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_counters_histograms_and_gauges():
    registry = Registry()
    requests = registry.counter("requests_total", "Requests.", ("endpoint", "status"))
    latency = registry.histogram("latency_seconds", "Seconds.", (0.1, 1.0), ("endpoint",))
    registry.gauge("depth", "Queued.", lambda: 7)
    requests.inc(endpoint="/v1/predict", status="200")
    requests.inc(2, endpoint="/v1/predict", status="200")
    requests.inc(endpoint='a"b\\', status="404")
    for seconds in (0.05, 0.5, 5.0):
        latency.observe(seconds, endpoint="/v1/predict")
    text = registry.render()
    samples = parse(text)
    assert samples['multihot_requests_total{endpoint="/v1/predict",status="200"}'] == 3
    assert samples['multihot_requests_total{endpoint="a\\"b\\\\",status="404"}'] == 1
    buckets = [
        samples[f'multihot_latency_seconds_bucket{{endpoint="/v1/predict",le="{le}"}}']
        for le in ("0.1", "1", "+Inf")
    ]
    assert buckets == [1, 2, 3]  # cumulative
    assert samples['multihot_latency_seconds_count{endpoint="/v1/predict"}'] == 3
    assert samples['multihot_latency_seconds_sum{endpoint="/v1/predict"}'] == pytest.approx(5.55)
    assert samples["multihot_depth"] == 7
    assert "# TYPE multihot_latency_seconds histogram" in text
    assert "# TYPE multihot_requests_total counter" in text


def test_labels_must_match():
    counter = Registry().counter("x_total", "X.", ("status",))
    with pytest.raises(ValueError, match="expected labels"):
        counter.inc(code="200")


def test_per_label_metrics_escape_names_and_keep_a_sum_and_a_count():
    import numpy as np

    names = ['say "hi"', "back\\slash", "new\nline"]
    registry = Registry()
    fired = registry.label_counter("label_predicted_total", "Fired.", names)
    probs = registry.label_summary("label_probability", "Probabilities.", names)
    registry.label_gauge("label_validation_predicted_ratio", "On validation.", names, [0.5, 0, 1])
    batch = np.array([[0.9, 0.2, 0.0], [0.7, 0.4, 1.0]], dtype=np.float32)
    fired.add((batch >= 0.5).sum(axis=0))
    probs.observe(batch)
    probs.observe(batch[:1])
    text = registry.render()
    samples = parse(text)
    assert samples['multihot_label_predicted_total{label="say \\"hi\\""}'] == 2
    assert samples['multihot_label_predicted_total{label="back\\\\slash"}'] == 0
    assert samples['multihot_label_predicted_total{label="new\\nline"}'] == 1
    assert samples['multihot_label_probability_sum{label="say \\"hi\\""}'] == pytest.approx(2.5)
    assert samples['multihot_label_probability_count{label="new\\nline"}'] == 3
    assert samples['multihot_label_validation_predicted_ratio{label="back\\\\slash"}'] == 0
    assert "# TYPE multihot_label_probability summary" in text
    assert len(text.splitlines()) == 3 * 2 + 3 + 2 * 3 + 3  # headers and one line per sample
