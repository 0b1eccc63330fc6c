"""A small Prometheus metrics registry, one per service (no global state, so tests can run many).

Counters, gauges and histograms with fixed label names; `child = metric.labels("a", "b")` once, then
`child.inc()` on the hot path. `Metrics.render()` gives the Prometheus text exposition format.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable

__all__ = ["Counter", "Gauge", "Histogram", "Metrics"]

DEFAULT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Value:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount

    def set(self, value: float) -> None:
        self.value = value


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._children: dict[tuple[str, ...], object] = {}

    def _labelstr(self, values: tuple[str, ...], extra: str = "") -> str:
        parts = [f'{k}="{_escape(v)}"' for k, v in zip(self.labelnames, values, strict=True)]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    """A monotonically increasing count."""

    kind = "counter"

    def labels(self, *values: str) -> _Value:
        """The child for these label values (create it once, keep it)."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            child = self._children[values] = _Value()
        return child  # type: ignore[return-value]

    def inc(self, amount: float = 1.0) -> None:
        """Increment the unlabelled counter."""
        self.labels().inc(amount)

    def value(self, *values: str) -> float:
        """Current value (0 if never touched)."""
        child = self._children.get(values)
        return child.value if isinstance(child, _Value) else 0.0

    def samples(self) -> list[str]:
        return [
            f"{self.name}{self._labelstr(k)} {_fmt(v.value)}"  # type: ignore[attr-defined]
            for k, v in sorted(self._children.items())
        ]


class Gauge(Counter):
    """A value that goes up and down; `set_function` makes it read a callback at scrape time."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> None:
        super().__init__(name, help_text, labelnames)
        self._fn: Callable[[], float | dict[tuple[str, ...], float]] | None = None

    def set(self, value: float) -> None:
        self.labels().set(value)

    def set_function(self, fn: Callable[[], float | dict[tuple[str, ...], float]]) -> None:
        """Read the value(s) from `fn` at scrape time: a float, or {label values: float}."""
        self._fn = fn

    def samples(self) -> list[str]:
        if self._fn is not None:
            got = self._fn()
            if isinstance(got, dict):
                return [f"{self.name}{self._labelstr(k)} {_fmt(v)}" for k, v in sorted(got.items())]
            return [f"{self.name} {_fmt(got)}"]
        return super().samples()


class _HistogramChild:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding quantile q (NaN when empty)."""
        if self.count == 0:
            return math.nan
        rank = q * self.count
        seen = 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            seen += n
            if seen >= rank:
                return bound
        return math.inf


class Histogram(_Metric):
    """Observations counted into buckets."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, labelnames: Iterable[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS
    ) -> None:
        super().__init__(name, help_text, labelnames)
        self.buckets = tuple(sorted(buckets))

    def labels(self, *values: str) -> _HistogramChild:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = _HistogramChild(self.buckets)
        return child  # type: ignore[return-value]

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def samples(self) -> list[str]:
        out = []
        for key, child in sorted(self._children.items()):
            assert isinstance(child, _HistogramChild)
            cumulative = 0
            for bound, n in zip((*self.buckets, math.inf), child.counts, strict=True):
                cumulative += n
                le = 'le="' + _fmt(bound) + '"'
                out.append(f"{self.name}_bucket{self._labelstr(key, le)} {cumulative}")
            out.append(f"{self.name}_sum{self._labelstr(key)} {_fmt(child.sum)}")
            out.append(f"{self.name}_count{self._labelstr(key)} {child.count}")
        return out


class Metrics:
    """The registry: create metrics once, render them all."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def _add(self, metric: _Metric) -> _Metric:
        existing = self._metrics.get(metric.name)
        if existing is not None:
            if type(existing) is not type(metric) or existing.labelnames != metric.labelnames:
                raise ValueError(f"metric {metric.name} registered twice with different shapes")
            return existing
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, labelnames))  # type: ignore[return-value]

    def gauge(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Gauge:
        return self._add(Gauge(name, help_text, labelnames))  # type: ignore[return-value]

    def histogram(
        self, name: str, help_text: str, labelnames: Iterable[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        return self._add(Histogram(name, help_text, labelnames, buckets))  # type: ignore[return-value]

    def get(self, name: str) -> _Metric | None:
        return self._metrics.get(name)

    def render(self) -> str:
        """Prometheus text exposition format, version 0.0.4."""
        lines: list[str] = []
        for metric in self._metrics.values():
            lines.extend(metric.header())
            lines.extend(metric.samples())
        return "\n".join(lines) + "\n"
