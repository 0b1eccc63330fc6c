"""The service's Prometheus metrics: a small typed facade over prometheus_client.

One `CollectorRegistry` per `Metrics` (no global state, so tests can run many services in one process).
Asking for a metric by name returns the same family each time. The process and platform collectors are
registered under the `stationmon_` prefix that every exported name carries (CONTRACT section 7).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

import prometheus_client
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

__all__ = ["Counter", "Gauge", "Histogram", "Metrics"]

PREFIX = "stationmon_"
DEFAULT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_M = TypeVar("_M", prometheus_client.Counter, prometheus_client.Gauge, prometheus_client.Histogram)
GaugeFunction = Callable[[], float | Mapping[tuple[str, ...], float]]


class _Family(Generic[_M]):
    """One metric family: its library object and the names that identify it."""

    _make: Callable[..., _M]

    def __init__(
        self, registry: CollectorRegistry, name: str, help_text: str, labelnames: tuple[str, ...], **kw: object
    ):
        self.name = name
        self.help = help_text
        self.labelnames = labelnames
        self._registry = registry
        self._metric: _M = self._make(name, help_text, labelnames, registry=registry, **kw)
        self._collector: prometheus_client.registry.Collector = self._metric

    def labels(self, *values: str) -> _M:
        """The child for these label values; with none, the unlabelled metric itself."""
        return self._metric.labels(*values) if values else self._metric

    def value(self, *values: str) -> float:
        """The current value of the sample `name{labels}` (0 if never touched): for tests and the demo."""
        wanted = dict(zip(self.labelnames, values, strict=True))
        for family in self._collector.collect():
            for sample in family.samples:
                if sample.name == self.name and sample.labels == wanted:
                    return float(sample.value)
        return 0.0


class Counter(_Family[prometheus_client.Counter]):
    """A count that only goes up; its name ends in `_total`, as the exposition shows it."""

    _make = prometheus_client.Counter

    def inc(self, amount: float = 1.0) -> None:
        """Increment the unlabelled counter."""
        self._metric.inc(amount)


class Gauge(_Family[prometheus_client.Gauge]):
    """A value that goes up and down, or is read from a callback at scrape time."""

    _make = prometheus_client.Gauge

    def set(self, value: float) -> None:
        """Set the unlabelled gauge."""
        self._metric.set(value)

    def set_function(self, fn: GaugeFunction) -> None:
        """Read the value(s) from `fn` at scrape time: a float, or {label values: float}."""
        self._registry.unregister(self._collector)
        self._collector = _GaugeCallback(self, fn)
        self._registry.register(self._collector)


class Histogram(_Family[prometheus_client.Histogram]):
    """Observations counted into buckets."""

    _make = prometheus_client.Histogram

    def observe(self, value: float) -> None:
        """Observe one value on the unlabelled histogram."""
        self._metric.observe(value)


class _GaugeCallback:
    """A gauge family whose samples a callback gives at scrape time (prometheus_client's custom collector)."""

    def __init__(self, gauge: Gauge, fn: GaugeFunction) -> None:
        self._gauge = gauge
        self._fn = fn

    def describe(self) -> Iterable[Metric]:
        """The family without samples, so the registry refuses a clashing name."""
        return [GaugeMetricFamily(self._gauge.name, self._gauge.help, labels=self._gauge.labelnames)]

    def collect(self) -> Iterable[Metric]:
        """The family with the callback's current values, sorted by label values."""
        family = GaugeMetricFamily(self._gauge.name, self._gauge.help, labels=self._gauge.labelnames)
        got = self._fn()
        for values, value in sorted(got.items()) if isinstance(got, Mapping) else [((), got)]:
            family.add_metric(list(values), value)
        return [family]


class _Prefixed:
    """Another collector's families renamed under `stationmon_` (the platform collector's `python_info`)."""

    def __init__(self, collector: prometheus_client.registry.Collector) -> None:
        self._collector = collector

    def collect(self) -> Iterable[Metric]:
        """Copies of the collector's families, their names and their samples' names prefixed."""
        for family in self._collector.collect():
            renamed = Metric(PREFIX + family.name, family.documentation, family.type, family.unit)
            renamed.samples = [s._replace(name=PREFIX + s.name) for s in family.samples]
            yield renamed


_F = TypeVar("_F", Counter, Gauge, Histogram)


class Metrics:
    """One service's registry: ask for a metric by name (created once), render them all."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(namespace=PREFIX.rstrip("_"), registry=self.registry)
        self.registry.register(_Prefixed(PlatformCollector(registry=None)))
        self._families: dict[str, Counter | Gauge | Histogram] = {}

    def counter(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Counter:
        """The counter `name` (ending in `_total`), created on first use."""
        return self._family(Counter, name, help_text, labelnames)

    def gauge(self, name: str, help_text: str, labelnames: Iterable[str] = ()) -> Gauge:
        """The gauge `name`, created on first use."""
        return self._family(Gauge, name, help_text, labelnames)

    def histogram(
        self, name: str, help_text: str, labelnames: Iterable[str] = (), buckets: Sequence[float] = DEFAULT_BUCKETS
    ) -> Histogram:
        """The histogram `name`, created on first use."""
        return self._family(Histogram, name, help_text, labelnames, buckets=buckets)

    def _family(self, kind: type[_F], name: str, help_text: str, labelnames: Iterable[str], **kw: object) -> _F:
        labels = tuple(labelnames)
        family = self._families.get(name)
        if family is None:
            created = self._families[name] = kind(self.registry, name, help_text, labels, **kw)
            return created
        if not isinstance(family, kind) or family.labelnames != labels:
            raise ValueError(f"metric {name} registered twice with different shapes")
        return family

    def get(self, name: str) -> Counter | Gauge | Histogram | None:
        """The family registered as `name`, if any."""
        return self._families.get(name)

    def render(self) -> str:
        """Every metric in the Prometheus text exposition format, version 0.0.4."""
        return generate_latest(self.registry).decode("utf-8")
