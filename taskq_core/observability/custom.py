"""Custom metrics: counters, gauges and histograms an application declares and updates from
its tasks (and its web code), added up over the whole cluster like taskq's own figures and
shown with them (``GET /metrics``, the Prometheus exposition)::

    emails = tq.metrics.counter("emails_sent", "Emails sent", labels=("provider",))

    @tq.task()
    def send(to: str) -> None:
        ...
        emails.inc(provider="ses")  # or emails.inc(3, provider="ses")

    backlog = tq.metrics.gauge("upstream_backlog", "Items waiting upstream")
    backlog.set(42)
    latency = tq.metrics.histogram("upstream_latency_seconds", "...", buckets=(0.01, 0.1, 1, 10))
    latency.observe(0.23)

Rules (``custom_rules.py``), checked before anything is buffered
(:class:`~taskq_core.errors.InvalidMetric` names the metric and the problem): a name of
letters, digits and ``_`` (not starting with a digit), at most 100 characters, not ending
in a suffix Prometheus reads (``_total``, ``_bucket``, ``_sum``, ``_count``, ...: taskq
adds them); at most 5 labels, declared up front, every one given on each update, values
strings of at most 100 characters; at most 1,000
label sets per metric in a process (the cardinality guard: a label holding an id would
grow Redis and every scrape without bound) and 200 metrics per application. Registering a
name again with the same kind, labels and buckets returns the same object; otherwise it
raises. Counters only go up; histogram buckets are fixed (sorted, positive, finite; at most
50; ``DEFAULT_BUCKETS`` by default), with ``+Inf`` added.

Cluster-wide: counters and histograms (non-cumulative bucket counts and the sum) are added
to fields of one Redis hash, so every process's updates add up. A gauge holds the value set
last anywhere in the cluster, by the setting process's clock (``redis_metrics.py``: a write
that arrives late never replaces a later value); gauges have no ``inc``/``dec``, whose
cluster-wide sum would drift for good whenever a process died between the two.

When writes happen: updates are buffered in the process (a few dict operations under a
lock) and written in one round trip per flush, never one per update. A worker flushes on
each tick (``worker.renew_interval``) from the metrics thread, so a slow Redis never stalls
its loop, and once more when it stops, so a clean stop loses nothing. Any other process (web
code, a script) flushes every :attr:`Metrics.flush_interval` seconds (5) from a daemon
thread started at its first update, and at ``tq.close()``; ``tq.metrics.flush()`` writes at
once (call it, or ``tq.close()``, before a script exits). A flush that fails keeps its
figures for the next one. A forked child starts with an empty buffer (its parent writes
what it had buffered).

Exported to Prometheus as ``taskq_custom_<name>`` (``custom_rules.PROMETHEUS_PREFIX``): no
taskq family starts with it, so a custom metric never clashes with a built-in one. Read back
by :mod:`.custom_report`.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import os
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ..brokers.base import MetricsWrite
from ..errors import InvalidMetric
from ..middleware import Middleware
from ..redact import redact_text
from .custom_rules import (
    DEFAULT_BUCKETS,
    MAX_LABEL_VALUE,
    MAX_METRICS,
    MAX_SERIES,
    Declaration,
    labels_text,
    le_text,
)

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..worker import Worker

log = logging.getLogger("taskq.metrics")

#: seconds between the flushes of a process that runs no worker
FLUSH_INTERVAL = 5.0
#: the most hash fields and gauge series one round trip writes
WRITE_CHUNK = 5000


# -- the metrics


def _number(metric: _Metric, value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidMetric(
            f"metric {metric.name!r}: {what} must be a finite number, got {value!r}"
        )
    return float(value)


class _Metric:
    """A declared metric and the field names of each label set it has seen."""

    __slots__ = ("_registry", "_series", "declaration")
    kind: ClassVar[str]

    def __init__(self, registry: Metrics, declaration: Declaration) -> None:
        self._registry = registry
        self.declaration = declaration
        self._series: dict[tuple[str, ...], Any] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, labels={self.declaration.labels!r})"

    @property
    def name(self) -> str:
        return self.declaration.name

    def _key(self, labels: dict[str, Any]) -> tuple[str, ...]:
        names = self.declaration.labels
        if len(labels) == len(names):
            try:
                return tuple(labels[n] for n in names)
            except KeyError:
                pass
        missing = [n for n in names if n not in labels]
        unknown = [n for n in labels if n not in names]
        problem = "; ".join(
            x
            for x in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(unknown)}" if unknown else "",
            )
            if x
        )
        raise InvalidMetric(
            f"metric {self.name!r} takes the labels ({', '.join(names)}): {problem}"
        )

    def _resolve(self, key: tuple[str, ...]) -> Any:
        """The fields of a label set (under the registry's lock)."""
        try:
            found = self._series.get(key)
        except TypeError:  # an unhashable label value: _new_series names it
            found = None
        return found if found is not None else self._new_series(key)

    def _new_series(self, key: tuple[str, ...]) -> Any:
        """The fields of a label set seen for the first time (under the registry's lock)."""
        for label, value in zip(self.declaration.labels, key, strict=True):
            if not isinstance(value, str):
                raise InvalidMetric(
                    f"metric {self.name!r}: label {label} must be a string,"
                    f" got {type(value).__name__}"
                )
            if len(value) > MAX_LABEL_VALUE:
                raise InvalidMetric(
                    f"metric {self.name!r}: label {label} longer than {MAX_LABEL_VALUE}"
                    f" characters ({len(value)})"
                )
        if len(self._series) >= MAX_SERIES:
            raise InvalidMetric(
                f"metric {self.name!r} has {MAX_SERIES} label sets already, the limit: a label"
                f" probably holds an id or free text ({', '.join(self.declaration.labels)});"
                " keep label values to a small fixed set"
            )
        fields = self._series[key] = self._fields(f"{self.name}|{labels_text(key)}")
        return fields

    def _fields(self, series: str) -> Any:
        raise NotImplementedError


class Counter(_Metric):
    """A total that only goes up, added up over every process."""

    __slots__ = ()
    kind = "counter"

    def _fields(self, series: str) -> str:
        return "c|" + series

    def inc(self, amount: float = 1, /, **labels: str) -> None:
        """Add ``amount`` (1 by default; 0 makes the label set appear) to the counter."""
        if amount != 1 or type(amount) is not int:
            amount = _number(self, amount, "the amount")
            if amount < 0:
                raise InvalidMetric(
                    f"metric {self.name!r}: a counter only goes up, got inc({amount!r})"
                )
        key = self._key(labels)
        reg = self._registry
        with reg._lock:
            field = self._resolve(key)
            reg._amounts[field] = reg._amounts.get(field, 0.0) + amount
        reg._started()


class Gauge(_Metric):
    """A value that goes up and down: the one set last anywhere in the cluster."""

    __slots__ = ()
    kind = "gauge"

    def _fields(self, series: str) -> str:
        return series

    def set(self, value: float, /, **labels: str) -> None:
        """Set the gauge to ``value``, as of now (the app's clock)."""
        v = _number(self, value, "the value")
        key = self._key(labels)
        reg = self._registry
        at_ms = int(reg._app.clock.time() * 1000)
        with reg._lock:
            series = self._resolve(key)
            held = reg._gauges.get(series)
            # several threads of one process: the last call here wins, never with an
            # earlier time than the value it replaces
            reg._gauges[series] = (max(at_ms, held[0]) if held else at_ms, v)
        reg._started()


class Histogram(_Metric):
    """Observations counted in fixed buckets, with their sum, over every process."""

    __slots__ = ()
    kind = "histogram"

    def _fields(self, series: str) -> tuple[tuple[str, ...], str]:
        name, _, labels = series.partition("|")
        bounds = (*self.declaration.buckets, math.inf)
        return tuple(f"b|{name}|{le_text(b)}|{labels}" for b in bounds), "s|" + series

    def observe(self, value: float, /, **labels: str) -> None:
        """Count one observation of ``value``."""
        v = _number(self, value, "the observed value")
        i = bisect.bisect_left(self.declaration.buckets, v)
        key = self._key(labels)
        reg = self._registry
        with reg._lock:
            buckets, total = self._resolve(key)
            reg._counts[buckets[i]] = reg._counts.get(buckets[i], 0) + 1
            reg._amounts[total] = reg._amounts.get(total, 0.0) + v
        reg._started()


M = TypeVar("M", bound=_Metric)


# -- the registry


class Metrics:
    """The custom metrics of one TaskQueue (``tq.metrics``), and the buffer of their updates
    in this process; see the module docstring."""

    def __init__(self, app: TaskQueue) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._metrics: dict[str, _Metric] = {}
        #: metrics whose declaration is stored
        self._declared: set[str] = set()
        self._amounts: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._gauges: dict[str, tuple[int, float]] = {}
        #: seconds between flushes of the metrics thread (a worker's ticks flush too)
        self.flush_interval = FLUSH_INTERVAL
        self._thread: tuple[threading.Thread, threading.Event] | None = None
        self._wake = threading.Event()
        _REGISTRIES.add(self)

    def __repr__(self) -> str:
        return f"Metrics({', '.join(self._metrics)})"

    def counter(self, name: str, help: str = "", *, labels: Sequence[str] = ()) -> Counter:
        """Declare (or get again) a counter."""
        return self._register(Counter, Declaration.make("counter", name, help, labels))

    def gauge(self, name: str, help: str = "", *, labels: Sequence[str] = ()) -> Gauge:
        """Declare (or get again) a gauge."""
        return self._register(Gauge, Declaration.make("gauge", name, help, labels))

    def histogram(
        self,
        name: str,
        help: str = "",
        *,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> Histogram:
        """Declare (or get again) a histogram with these bucket bounds (``+Inf`` added)."""
        return self._register(Histogram, Declaration.make("histogram", name, help, labels, buckets))

    def _register(self, kind: type[M], declaration: Declaration) -> M:
        with self._lock:
            found = self._metrics.get(declaration.name)
            if found is not None:
                d = found.declaration
                same = (d.kind, d.labels, d.buckets) == (
                    declaration.kind,
                    declaration.labels,
                    declaration.buckets,
                )
                if not same or not isinstance(found, kind):
                    raise InvalidMetric(
                        f"metric {d.name!r} is already registered as {d.describe()},"
                        f" not as {declaration.describe()}"
                    )
                return found
            if len(self._metrics) >= MAX_METRICS:
                raise InvalidMetric(
                    f"metric {declaration.name!r}: an application has at most {MAX_METRICS}"
                    " custom metrics"
                )
            metric = self._metrics[declaration.name] = kind(self, declaration)
            return metric

    def get(self, name: str) -> Counter | Gauge | Histogram | None:
        """The metric registered under ``name`` in this process, if any."""
        found = self._metrics.get(name)
        return found if isinstance(found, Counter | Gauge | Histogram) else None

    def declarations(self) -> list[Declaration]:
        """The metrics registered in this process."""
        with self._lock:
            return [m.declaration for m in self._metrics.values()]

    # -- writing

    def _started(self) -> None:
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            stop = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(stop,), name="taskq-metrics", daemon=True
            )
            self._thread = (thread, stop)
        thread.start()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            if stop.is_set():
                return
            self._flush_logged()

    def flush_soon(self) -> None:
        """Have the metrics thread flush now (a worker's tick), if there are metrics."""
        if not self._metrics:
            return
        self._started()
        self._wake.set()

    def _take(self) -> MetricsWrite | None:
        with self._lock:
            put = {
                "m|" + name: m.declaration.encode()
                for name, m in self._metrics.items()
                if name not in self._declared
            }
            if not (put or self._counts or self._amounts or self._gauges):
                return None
            batch = MetricsWrite(put, self._counts, self._amounts, self._gauges)
            self._counts, self._amounts, self._gauges = {}, {}, {}
            self._declared.update(k[2:] for k in put)
            return batch

    def _restore(self, batch: MetricsWrite) -> None:
        """Put back what a failed write took, for the next flush."""
        with self._lock:
            self._declared.difference_update(k[2:] for k in batch.put)
            for f, n in batch.counts.items():
                self._counts[f] = self._counts.get(f, 0) + n
            for f, x in batch.amounts.items():
                self._amounts[f] = self._amounts.get(f, 0.0) + x
            for s, (at_ms, v) in batch.gauges.items():
                held = self._gauges.get(s)
                if held is None or at_ms > held[0]:
                    self._gauges[s] = (at_ms, v)

    def flush(self) -> None:
        """Write what this process has buffered now. A broker error is raised, and what it
        could not write stays buffered for the next flush."""
        parts = _split(self._take())
        for i, part in enumerate(parts):
            try:
                self._app.broker.metrics_write(part)
            except BaseException:
                for rest in parts[i:]:
                    self._restore(rest)
                raise

    async def aflush(self) -> None:
        """:meth:`flush` from async code, with the broker's asyncio client."""
        parts = _split(self._take())
        for i, part in enumerate(parts):
            try:
                await self._app.broker.metrics_write_async(part)
            except BaseException:
                for rest in parts[i:]:
                    self._restore(rest)
                raise

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception as exc:
            log.warning("could not write custom metrics: %s", redact_text(str(exc)))

    def _stop_thread(self) -> threading.Thread | None:
        with self._lock:
            held, self._thread = self._thread, None
        if held is None:
            return None
        held[1].set()
        self._wake.set()
        return held[0] if held[0] is not threading.current_thread() else None

    def close(self) -> None:
        """Stop the metrics thread and write what is buffered (``tq.close()`` calls it); a
        later update starts the thread again."""
        thread = self._stop_thread()
        if thread is not None:
            thread.join(timeout=10)
        self._flush_logged()

    async def aclose(self) -> None:
        """:meth:`close` from async code (``await tq.aclose()``)."""
        thread = self._stop_thread()
        if thread is not None:
            await asyncio.to_thread(thread.join, 10)
        try:
            await self.aflush()
        except Exception as exc:
            log.warning("could not write custom metrics: %s", redact_text(str(exc)))

    def discard(self) -> None:
        """Drop what is buffered, unwritten (the test isolation's switch of brokers)."""
        with self._lock:
            self._counts, self._amounts, self._gauges = {}, {}, {}
            self._declared = set()

    def _forked(self) -> None:
        # the parent writes what it had buffered; its thread did not survive the fork
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self.discard()


def _split(batch: MetricsWrite | None) -> list[MetricsWrite]:
    """``batch`` in writes of at most :data:`WRITE_CHUNK` fields (declarations first)."""
    if batch is None:
        return []
    if len(batch) <= WRITE_CHUNK:
        return [batch]
    parts = [MetricsWrite(put=batch.put)]
    for attr in ("counts", "amounts", "gauges"):
        for key, value in getattr(batch, attr).items():
            if len(parts[-1]) >= WRITE_CHUNK:
                parts.append(MetricsWrite())
            getattr(parts[-1], attr)[key] = value
    return parts


_REGISTRIES: weakref.WeakSet[Metrics] = weakref.WeakSet()


def _after_fork() -> None:
    for registry in list(_REGISTRIES):
        registry._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class CustomMetricsMiddleware(Middleware):
    """Flushes the application's custom metrics on each tick of a worker (from the metrics
    thread) and when it stops (registered by default on every TaskQueue)."""

    def tick(self, worker: Worker) -> None:
        worker.app.metrics.flush_soon()

    def worker_stopping(self, worker: Worker) -> None:
        try:
            worker.app.metrics.flush()
        except Exception as exc:
            log.warning(
                "worker %s: could not write custom metrics: %s", worker.id, redact_text(str(exc))
            )
