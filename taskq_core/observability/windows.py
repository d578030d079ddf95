"""Figures over a recent window (``monitoring.sla_window``) rather than since the start.

Counters and histograms in the broker only grow. To know what happened in the last five
minutes, the alert evaluator stores small snapshots of them in the broker (at most ten per
window) and a window is the difference between now and the oldest snapshot still inside
it. Until a first snapshot exists there is no window, and the rules that need one stay
quiet rather than judge the whole history.

A snapshot holds, per queue: the outcome counters, the queue's wait histogram and each
task's run time histogram (bucket counts only).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .metrics import LE, WINDOW_COUNTERS, Histogram, error_rate, executions

if TYPE_CHECKING:
    from ..app import TaskQueue
    from .cluster import Cluster


@dataclass(slots=True)
class QueueWindow:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WINDOW_COUNTERS, 0))
    wait: Histogram = field(default_factory=Histogram)
    runtime: dict[str, Histogram] = field(default_factory=dict)


@dataclass(slots=True)
class Window:
    """Deltas between the oldest snapshot in the window and now; ``seconds`` is None (and
    every figure empty) when there is no snapshot yet."""

    seconds: float | None
    queues: dict[str, QueueWindow] = field(default_factory=dict)

    def task_runtime(self) -> dict[str, Histogram]:
        """Run time histogram of each task name, summed over its queues."""
        out: dict[str, Histogram] = {}
        for qw in self.queues.values():
            for task, h in qw.runtime.items():
                out.setdefault(task, Histogram()).add(h)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (``/metrics/performance``)."""
        secs = self.seconds
        queues = []
        for name, qw in sorted(self.queues.items()):
            n = executions(qw.counters)
            queues.append(
                {
                    "queue": name,
                    "executions": n,
                    "throughput_per_second": round(n / secs, 6) if secs else None,
                    "error_rate": error_rate(qw.counters),
                    "wait_p95": _r(qw.wait.quantile(0.95)),
                }
            )
        tasks = [
            {"task": t, "executions": h.count, "runtime_p95": _r(h.quantile(0.95))}
            for t, h in sorted(self.task_runtime().items())
        ]
        return {"seconds": secs, "queues": queues, "tasks": tasks}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def _state(cluster: Cluster) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, s in cluster.stats.items():
        out[name] = {
            "c": {k: s.counters.get(k, 0) for k in WINDOW_COUNTERS},
            "w": s.histogram("wait").counts,
            "r": {t: ts.runtime.counts for t, ts in s.tasks.items() if ts.runtime.count},
        }
    return out


def _delta(now: dict[str, Any], base: dict[str, Any]) -> dict[str, QueueWindow]:
    out: dict[str, QueueWindow] = {}
    for name, cur in now.items():
        old = base.get(name) or {}
        qw = QueueWindow()
        old_c = old.get("c") or {}
        # a snapshot written before a counter joined WINDOW_COUNTERS lacks it: 0
        qw.counters = {
            k: max(0, int(cur["c"].get(k, 0)) - int(old_c.get(k, 0))) for k in WINDOW_COUNTERS
        }
        qw.wait = Histogram(cur["w"]).minus(_hist(old.get("w")))
        old_r = old.get("r") or {}
        for task, counts in cur["r"].items():
            h = Histogram(counts).minus(_hist(old_r.get(task)))
            if h.count:
                qw.runtime[task] = h
        out[name] = qw
    return out


def _hist(counts: Any) -> Histogram:
    if isinstance(counts, list) and len(counts) == len(LE):
        return Histogram([int(c) for c in counts])
    return Histogram()


def current(app: TaskQueue, cluster: Cluster, *, record: bool = False) -> Window:
    """The window ending at ``cluster.at_ms``. With ``record``, also store a snapshot of
    now when the newest one is older than a tenth of the window (the alert evaluator
    does this; readers do not)."""
    span_ms = int(app.settings.monitoring.sla_window * 1000)
    now_ms = cluster.at_ms
    broker = app.broker
    snaps = broker.snapshots(now_ms - span_ms)
    state = _state(cluster)
    if record and (not snaps or now_ms - snaps[-1][0] >= max(1000, span_ms // 10)):
        data = orjson.dumps({"at": now_ms, "q": state})
        broker.snapshot_add(now_ms, data, now_ms - span_ms)
    for at_ms, raw in snaps:
        if at_ms > now_ms:
            continue
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            base = orjson.loads(raw)["q"]
            return Window((now_ms - at_ms) / 1000, _delta(state, base))
    return Window(None)
