"""The server's counters and histograms, rendered in the Prometheus text format (version 0.0.4).

Small on purpose: three kinds (counter, gauge, histogram), labels as keyword arguments, one lock;
and per model label (:class:`LabelCounter`, :class:`LabelSummary`, :class:`LabelGauge`), one
sample per label of the model kept in arrays, so a request adds all its texts in one step.
Everything a scrape of ``GET /metrics`` shows is recorded here.

Example:
    >>> registry = Registry()
    >>> requests = registry.counter("requests_total", "Requests answered.", ("status",))
    >>> requests.inc(status="200")
    >>> print(registry.render().splitlines()[2])
    multihot_requests_total{status="200"} 1
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

PREFIX = "multihot_"

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Seconds."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Texts per forward pass."""
INF = 'le="+Inf"'


def _labels(names: Sequence[str], values: tuple[str, ...], extra: str = "") -> str:
    pairs = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        pairs.append(extra)
    return "{" + ",".join(pairs) + "}" if pairs else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str], lock):
        self.name, self.help, self.label_names, self.lock = (
            PREFIX + name,
            help_text,
            label_names,
            lock,
        )

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(
                f"{self.name}: expected labels {self.label_names}, got {sorted(labels)}"
            )
        return tuple(str(labels[n]) for n in self.label_names)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def lines(self) -> list[str]:
        """The metric's samples, one line each; called with the lock held."""
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *args):
        super().__init__(*args)
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1, **labels: str) -> None:
        key = self._key(labels)
        with self.lock:
            self.values[key] = self.values.get(key, 0) + amount

    def lines(self) -> list[str]:
        return [
            f"{self.name}{_labels(self.label_names, k)} {_number(v)}"
            for k, v in sorted(self.values.items())
        ]


class Gauge(_Metric):
    """A value read when scraped (``read``), e.g. the queue's depth."""

    kind = "gauge"

    def __init__(self, name, help_text, lock, read: Callable[[], float]):
        super().__init__(name, help_text, (), lock)
        self.read = read

    def lines(self) -> list[str]:
        return [f"{self.name} {_number(self.read())}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name, help_text, label_names, lock, buckets: Sequence[float]):
        super().__init__(name, help_text, label_names, lock)
        self.buckets = tuple(sorted(buckets))
        self.series: dict[tuple[str, ...], list] = {}  # key -> [bucket counts, sum, count]

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self.lock:
            counts, total, n = self.series.get(key) or ([0] * len(self.buckets), 0.0, 0)
            i = bisect.bisect_left(self.buckets, value)
            if i < len(counts):
                counts[i] += 1
            self.series[key] = [counts, total + value, n + 1]

    def lines(self) -> list[str]:
        out = []
        for key, (counts, total, n) in sorted(self.series.items()):
            cumulative = 0
            for bound, count in zip(self.buckets, counts, strict=True):
                cumulative += count
                le = _labels(self.label_names, key, f'le="{_number(bound)}"')
                out.append(f"{self.name}_bucket{le} {cumulative}")
            out.append(f"{self.name}_bucket{_labels(self.label_names, key, INF)} {n}")
            out.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(total)}")
            out.append(f"{self.name}_count{_labels(self.label_names, key)} {n}")
        return out


class _PerLabel(_Metric):
    """A metric with one sample per label of the model, in the label ``label``."""

    def __init__(self, name, help_text, lock, labels: Sequence[str]):
        super().__init__(name, help_text, ("label",), lock)
        self.labels = tuple(labels)

    def _samples(self, suffix: str, values: Sequence[float]) -> list[str]:
        return [
            f'{self.name}{suffix}{{label="{_escape(label)}"}} {_number(value)}'
            for label, value in zip(self.labels, values, strict=True)
        ]


class LabelCounter(_PerLabel):
    """A counter per label of the model, e.g. the texts each label was predicted for."""

    kind = "counter"

    def __init__(self, *args):
        super().__init__(*args)
        self.values = np.zeros(len(self.labels), dtype=np.float64)

    def add(self, amounts: np.ndarray) -> None:
        """Add ``amounts`` (one per label, in the model's order)."""
        with self.lock:
            self.values += amounts

    def lines(self) -> list[str]:
        return self._samples("", self.values.tolist())


class LabelSummary(_PerLabel):
    """A summary per label of the model without quantiles: ``_sum`` and ``_count``, so that
    ``rate(x_sum[5m]) / rate(x_count[5m])`` is the mean over a window (Prometheus's way)."""

    kind = "summary"

    def __init__(self, *args):
        super().__init__(*args)
        self.sums = np.zeros(len(self.labels), dtype=np.float64)
        self.count = 0

    def observe(self, values: np.ndarray) -> None:
        """Observe ``values`` of shape ``(n, num_labels)``: n values of each label."""
        with self.lock:
            self.sums += values.sum(axis=0, dtype=np.float64)
            self.count += len(values)

    def lines(self) -> list[str]:
        return self._samples("_sum", self.sums.tolist()) + self._samples(
            "_count", [self.count] * len(self.labels)
        )


class LabelGauge(_PerLabel):
    """A fixed value per label of the model, e.g. a rate seen on the run's validation rows."""

    kind = "gauge"

    def __init__(self, name, help_text, lock, labels: Sequence[str], values: Iterable[float]):
        super().__init__(name, help_text, lock, labels)
        self.values = [float(v) for v in values]

    def lines(self) -> list[str]:
        return self._samples("", self.values)


class Registry:
    """The metrics of one server process."""

    def __init__(self):
        self.lock = threading.Lock()
        self.metrics: list[_Metric] = []

    def counter(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, tuple(label_names), self.lock))

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> Gauge:
        return self._add(Gauge(name, help_text, self.lock, read))

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float], label_names: Sequence[str] = ()
    ) -> Histogram:
        return self._add(Histogram(name, help_text, tuple(label_names), self.lock, buckets))

    def label_counter(self, name: str, help_text: str, labels: Sequence[str]) -> LabelCounter:
        return self._add(LabelCounter(name, help_text, self.lock, labels))

    def label_summary(self, name: str, help_text: str, labels: Sequence[str]) -> LabelSummary:
        return self._add(LabelSummary(name, help_text, self.lock, labels))

    def label_gauge(
        self, name: str, help_text: str, labels: Sequence[str], values: Iterable[float]
    ) -> LabelGauge:
        return self._add(LabelGauge(name, help_text, self.lock, labels, values))

    def _add(self, metric):
        self.metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics:
            with self.lock:
                body = metric.lines()
            lines += metric.header() + body
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """What ``GET /metrics`` reports: requests by endpoint and status, latency, queue depth, the
    batches the batcher ran (texts and padded tokens each), and per label of the model how often
    it was predicted and its mean probability over the texts served, beside the same on the run's
    validation rows (:meth:`publish_validation`), so an alert can compare them."""

    def __init__(self, queue_depth: Callable[[], float], label_names: Sequence[str] = ()):
        self.registry = Registry()
        self.label_names = tuple(label_names)
        self.requests = self.registry.counter(
            "requests_total",
            "HTTP requests answered, by endpoint and status code.",
            ("endpoint", "status"),
        )
        self.latency = self.registry.histogram(
            "request_latency_seconds",
            "Seconds from a request's arrival to its answer.",
            LATENCY_BUCKETS,
            ("endpoint",),
        )
        self.queue_depth = self.registry.gauge(
            "queue_depth", "Texts waiting for a forward pass.", queue_depth
        )
        self.batch_size = self.registry.histogram(
            "batch_size", "Texts per forward pass.", BATCH_BUCKETS
        )
        self.batch_tokens = self.registry.histogram(
            "batch_padded_tokens",
            "Padded tokens per forward pass (texts x longest).",
            tuple(2**i for i in range(4, 17)),
        )
        self.texts = self.registry.counter("texts_total", "Texts labelled.")
        self.dropped = self.registry.counter(
            "texts_dropped_total", "Texts not computed because their client went away."
        )
        self.label_predicted = self.registry.label_counter(
            "label_predicted_total",
            "Texts answered with the label predicted (its probability at or above its threshold).",
            self.label_names,
        )
        self.label_probability = self.registry.label_summary(
            "label_probability",
            "The label's probability over the texts answered: rate(_sum) / rate(_count) is its "
            "mean.",
            self.label_names,
        )

    def record_served(self, probs: np.ndarray, decisions: np.ndarray) -> None:
        """Count the texts of one answer: ``probs`` and ``decisions`` ``(n_texts, num_labels)``,
        the probabilities and the labels predicted as the client was told them."""
        self.label_predicted.add(decisions.sum(axis=0))
        self.label_probability.observe(probs)

    def publish_validation(self, predicted_rate: np.ndarray, mean_probability: np.ndarray) -> None:
        """Report, per label, the share of the run's validation texts it was predicted for and
        its mean probability there: the baseline the served rates drift from."""
        self.registry.label_gauge(
            "label_validation_predicted_ratio",
            "Share of the run's validation texts the label was predicted for, at its threshold.",
            self.label_names,
            predicted_rate,
        )
        self.registry.label_gauge(
            "label_validation_mean_probability",
            "The label's mean probability over the run's validation texts.",
            self.label_names,
            mean_probability,
        )

    def render(self) -> str:
        return self.registry.render()
