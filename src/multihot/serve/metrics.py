"""The server's counters and histograms, rendered in the Prometheus text format (version 0.0.4).

Small on purpose: three kinds (counter, gauge, histogram), labels as keyword arguments, one lock.
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
from collections.abc import Callable, Sequence

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
    """What ``GET /metrics`` reports: requests by endpoint and status, latency, queue depth, and
    the batches the batcher ran (texts and padded tokens each)."""

    def __init__(self, queue_depth: Callable[[], float]):
        self.registry = Registry()
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

    def render(self) -> str:
        return self.registry.render()
