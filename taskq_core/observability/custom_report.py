"""Custom metrics read back (:mod:`.custom` writes them): the whole cluster's figures, as
the façade's ``custom`` section of ``GET /metrics`` and as Prometheus families.

A metric is known by its declaration: the one registered in the reading process, else the
one stored by the processes that registered it. Stored fields that do not fit it (another
kind, other labels or buckets, left by an older version of the code) are ignored, as are
label sets past :data:`~.custom.MAX_SERIES` per metric (the first in sorted order are kept).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from .custom_rules import (
    MAX_LABEL_VALUE,
    MAX_METRICS,
    MAX_SERIES,
    PROMETHEUS_PREFIX,
    Declaration,
    le_text,
)
from .metrics import bucket_quantile

if TYPE_CHECKING:
    from ..app import TaskQueue


@dataclass(slots=True)
class Series:
    """One label set's figures: a counter's total or a gauge's value (and when it was set),
    or a histogram's bucket counts (not cumulative, ``+Inf`` last) and sum."""

    value: float = 0.0
    at_ms: int | None = None
    counts: list[int] = field(default_factory=list)
    sum: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(slots=True)
class Family:
    """A metric and its label sets (by label values, in declared order)."""

    declaration: Declaration
    series: dict[tuple[str, ...], Series] = field(default_factory=dict)

    def series_of(self, values: tuple[str, ...]) -> Series:
        found = self.series.get(values)
        if found is None:
            found = self.series[values] = Series(counts=[0] * (len(self.declaration.buckets) + 1))
        return found


def _values(text: str, d: Declaration) -> tuple[str, ...] | None:
    """The label values of a stored field, if they fit the declaration."""
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if (
        not isinstance(values, list)
        or len(values) != len(d.labels)
        or not all(isinstance(v, str) and len(v) <= MAX_LABEL_VALUE for v in values)
    ):
        return None
    return tuple(values)


def _declarations(app: TaskQueue, fields: dict[str, str]) -> dict[str, Declaration]:
    found: dict[str, Declaration] = {}
    for key, raw in fields.items():
        if key.startswith("m|"):
            d = Declaration.decode(key[2:], raw)
            if d is not None:
                found[d.name] = d
    for d in app.metrics.declarations():  # this process's own declaration wins
        found[d.name] = d
    return {name: found[name] for name in sorted(found)[:MAX_METRICS]}


def read(app: TaskQueue) -> list[Family]:
    """Every custom metric of the cluster, sorted by name (two round trips at most)."""
    fields, gauges = app.broker.metrics_read()
    families = {name: Family(d) for name, d in _declarations(app, fields).items()}
    bounds: dict[str, dict[str, int]] = {}
    for key, raw in fields.items():
        kind, _, rest = key.partition("|")
        name, _, rest = rest.partition("|")
        fam = families.get(name)
        if fam is None or kind == "m":
            continue
        d = fam.declaration
        try:
            if kind == "c" and d.kind == "counter":
                if (values := _values(rest, d)) is not None:
                    fam.series_of(values).value = float(raw)
            elif kind == "s" and d.kind == "histogram":
                if (values := _values(rest, d)) is not None:
                    fam.series_of(values).sum = float(raw)
            elif kind == "b" and d.kind == "histogram":
                le, _, text = rest.partition("|")
                index = bounds.get(name)
                if index is None:
                    bs = (*d.buckets, math.inf)
                    index = bounds[name] = {le_text(b): i for i, b in enumerate(bs)}
                i = index.get(le)
                if i is not None and (values := _values(text, d)) is not None:
                    fam.series_of(values).counts[i] = int(raw)
        except ValueError:  # not written by taskq: ignored, as parse_stats does
            continue
    for series, (at_ms, value) in gauges.items():
        name, _, text = series.partition("|")
        fam = families.get(name)
        if fam is None or fam.declaration.kind != "gauge":
            continue
        if (values := _values(text, fam.declaration)) is not None:
            s = fam.series_of(values)
            s.value, s.at_ms = value, at_ms
    for fam in families.values():
        if len(fam.series) > MAX_SERIES:
            fam.series = {k: fam.series[k] for k in sorted(fam.series)[:MAX_SERIES]}
    return list(families.values())


def cumulative(d: Declaration, s: Series) -> list[tuple[str, int]]:
    """``(le, observations <= le)`` pairs (``le`` as stored: ``0.5``, ``10.0``), ``+Inf``
    last."""
    out, total = [], 0
    for bound, n in zip((*d.buckets, math.inf), s.counts, strict=True):
        total += n
        out.append((le_text(bound), total))
    return out


def quantile(d: Declaration, s: Series, q: float) -> float | None:
    """Estimate of the ``q`` quantile of a series (see :func:`metrics.bucket_quantile`)."""
    return bucket_quantile(s.counts, d.buckets, q)


def _num(v: float) -> float | int:
    """A whole number as an integer (counts added up as floats read back as ``3.0``)."""
    return int(v) if v.is_integer() and abs(v) < 2**53 else v


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def report(app: TaskQueue) -> list[dict[str, Any]]:
    """The ``custom`` section of ``GET /metrics``: each metric with its kind, help, labels
    (and buckets), and per label set its value (gauges: and ``updated_at``), or its count,
    sum, mean, p50/p95/p99 estimates and cumulative buckets."""
    out = []
    for fam in read(app):
        d = fam.declaration
        rows = []
        for values, s in sorted(fam.series.items()):
            row: dict[str, Any] = {"labels": dict(zip(d.labels, values, strict=True))}
            if d.kind == "histogram":
                n = s.count
                row.update(
                    count=n,
                    sum=_num(round(s.sum, 9)),
                    avg=round(s.sum / n, 6) if n else None,
                    p50=_round(quantile(d, s, 0.5)),
                    p95=_round(quantile(d, s, 0.95)),
                    p99=_round(quantile(d, s, 0.99)),
                    buckets=[{"le": le, "count": c} for le, c in cumulative(d, s)],
                )
            else:
                row["value"] = _num(s.value)
                if d.kind == "gauge":
                    row["updated_at"] = s.at_ms
            rows.append(row)
        entry: dict[str, Any] = {
            "name": d.name,
            "kind": d.kind,
            "help": d.help,
            "labels": list(d.labels),
        }
        if d.kind == "histogram":
            entry["buckets"] = list(d.buckets)
        entry["series"] = rows
        out.append(entry)
    return out


def families(app: TaskQueue) -> Iterator[Metric]:
    """The custom metrics as Prometheus families named ``taskq_custom_<name>``: a counter
    (``_total``), a gauge, or a histogram (``_bucket`` with ``le``, ``_sum``, ``_count``)."""
    for fam in read(app):
        d = fam.declaration
        name, labels = PROMETHEUS_PREFIX + d.name, list(d.labels)
        metric: CounterMetricFamily | GaugeMetricFamily | HistogramMetricFamily
        if d.kind == "counter":
            metric = CounterMetricFamily(name, d.help, labels=labels)
            for values, s in sorted(fam.series.items()):
                metric.add_metric(list(values), s.value)
        elif d.kind == "gauge":
            metric = GaugeMetricFamily(name, d.help, labels=labels)
            for values, s in sorted(fam.series.items()):
                metric.add_metric(list(values), s.value)
        else:
            metric = HistogramMetricFamily(name, d.help, labels=labels)
            for values, s in sorted(fam.series.items()):
                metric.add_metric(list(values), cumulative(d, s), s.sum)
        yield metric
