"""Prometheus exposition with MetalLB's exact metric names.

MetalLB's names do not follow prometheus-client's conventions (counters without `_total`, gauges
with it), and prometheus-client rewrites counter names on exposition. So the MetalLB families are
rendered here, in the text format 0.0.4, and prometheus-client contributes only the standard
process metrics. Two styles of family:

* stored: values set by the owner (`Counter.inc`, `Gauge.set`, `remove`);
* pulled: a callable asked at scrape time (pool stats, BGP sessions, layer2 counters), so a series
  exists exactly as long as the thing it describes — no stale series to forget to delete.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["counter", "gauge"]
LabelValues = tuple[str, ...]
Sample = tuple[LabelValues, float]


def format_value(value: float) -> str:
    """Go's text format for a sample value: integers without a decimal point."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass
class MetricFamily:
    """One metric family: a name, its help and type, and how to get its samples."""

    name: str
    help: str
    type: MetricType
    label_names: LabelValues = ()
    _values: dict[LabelValues, float] = field(default_factory=dict)
    _pull: Callable[[], Iterable[Sample]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _key(self, labels: LabelValues) -> LabelValues:
        if len(labels) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {labels}")
        return tuple(str(v) for v in labels)

    def samples(self) -> list[Sample]:
        if self._pull is not None:
            return [(self._key(tuple(lv)), float(v)) for lv, v in self._pull()]
        with self._lock:
            return sorted(self._values.items())

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.type}"]
        for labels, value in self.samples():
            if labels:
                pairs = ",".join(
                    f'{k}="{escape_label_value(v)}"'
                    for k, v in zip(self.label_names, labels, strict=True)
                )
                lines.append(f"{self.name}{{{pairs}}} {format_value(value)}")
            else:
                lines.append(f"{self.name} {format_value(value)}")
        return "\n".join(lines) + "\n"


class Counter(MetricFamily):
    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)


class Gauge(MetricFamily):
    def set(self, value: float, *labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def remove(self, *labels: str) -> None:
        with self._lock:
            self._values.pop(self._key(labels), None)

    def value(self, *labels: str) -> float | None:
        with self._lock:
            return self._values.get(self._key(labels))


class Registry:
    """The families of one process, rendered in registration order."""

    def __init__(self, process_metrics: bool = True) -> None:
        self._families: dict[str, MetricFamily] = {}
        self._lock = threading.Lock()
        self._process_metrics = process_metrics

    def _add(self, family: MetricFamily) -> None:
        with self._lock:
            if family.name in self._families:
                raise ValueError(f"metric {family.name} registered twice")
            self._families[family.name] = family

    def counter(self, name: str, help: str, labels: LabelValues = ()) -> Counter:
        c = Counter(name, help, "counter", labels)
        self._add(c)
        return c

    def gauge(self, name: str, help: str, labels: LabelValues = ()) -> Gauge:
        g = Gauge(name, help, "gauge", labels)
        self._add(g)
        return g

    def pulled(
        self,
        name: str,
        help: str,
        type: MetricType,
        labels: LabelValues,
        pull: Callable[[], Iterable[Sample]],
    ) -> MetricFamily:
        f = MetricFamily(name, help, type, labels, _pull=pull)
        self._add(f)
        return f

    def family(self, name: str) -> MetricFamily | None:
        return self._families.get(name)

    def render(self) -> str:
        with self._lock:
            families = list(self._families.values())
        parts = [f.render() for f in families]
        if self._process_metrics:
            parts.append(_process_metrics_text())
        return "".join(parts)


def _process_metrics_text() -> str:
    """Standard process_* metrics (the Go runtime exports its own equivalents)."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.process_collector import ProcessCollector

    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    return generate_latest(registry).decode()


def parse_exposition(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Parse text exposition into {(name, labels): value}; used by tests and `lab status`."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out
