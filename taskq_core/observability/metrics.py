"""Task metrics written by the workers, and how they are read back.

The Lua scripts count, in each queue's stats hash, ``ok``, ``retry``, ``failed`` and
``dead`` per queue and per task (``ok|<task>``...), ``enqueued`` per task only (readers add
up the queue's total, see ``brokers.base.queue_stats``), plus queue-wide events
(``stale_acks``, ``lease_expired``...). :class:`MetricsMiddleware` adds, per task name,
through ``worker.add_stat`` (summed in the worker and written with its next settle round
trip, never a round trip of its own):

================================  ==========================================================
``started|<task>``                executions begun
``timed_out|<task>``              executions stopped by their soft time limit
``wait_bucket|<task>|<le>``       executions that waited at most ``le`` seconds (and more than
                                  the bucket below): buckets are *not* cumulative here
``wait_sum_us|<task>``            total queue wait, microseconds
``runtime_bucket|<task>|<le>``    the same for run time
``runtime_sum_us|<task>``
================================  ==========================================================

Every worker process adds to the same fields, so the figures are those of the whole cluster.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..middleware import Middleware, TaskEvent

if TYPE_CHECKING:
    from ..message import Message
    from ..worker import Worker

#: upper bounds (seconds) of the histogram buckets, shared by wait and run time
BUCKETS: tuple[float, ...] = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
)
#: bucket labels as stored and exported (Prometheus ``le``), the last one ``+Inf``
LE: tuple[str, ...] = (*(format(b, "g") for b in BUCKETS), "+Inf")
_LE_INDEX = {le: i for i, le in enumerate(LE)}

#: counters per task: stats name -> public name
TASK_COUNTERS: dict[str, str] = {
    "enqueued": "enqueued",
    "started": "started",
    "ok": "succeeded",
    "retry": "retried",
    "failed": "failed",
    "dead": "dead",
    "timed_out": "timed_out",
    # flow control: not started before their expiry, not run; stopped on request
    "expired": "expired",
    "aborted": "aborted",
}
#: counters only kept per queue: stats name -> public name
QUEUE_COUNTERS: dict[str, str] = {
    "stale_acks": "stale_acks",
    "lease_expired": "lease_expired",
    "released": "released",
    # hand-backs that count as a delivery without an outcome (release.lua; the poison rule)
    "released_counted": "released_counted",
    "cancelled": "cancelled",
    "orphans": "orphans",
    "dead_retried": "dead_retried",
    "dead_purged": "dead_purged",
    # messages a worker with signing on refused (signing.py); the bad_signature alert
    "bad_signature": "bad_signatures",
    # flow control (lua/_lib.lua gate_admit): deliveries deferred by a rate limit, and
    # tasks that waited for a concurrency slot
    "throttled": "throttled",
    "capped": "capped",
    # abort requests stored for running tasks (cancel.lua with abort)
    "abort_requested": "abort_requested",
    # workflows (taskq_core/workflow), counted in the queue of their first step
    "wf_started": "workflows_started",
    "wf_succeeded": "workflows_succeeded",
    "wf_failed": "workflows_failed",
    "wf_cancelled": "workflows_cancelled",
    "wf_retried": "workflows_retried",
}
#: outcomes of an execution, as counted by settle.lua
OUTCOMES = ("ok", "retry", "failed", "dead")
#: counters kept in the alert evaluator's snapshots (windows.py): the outcomes, and the
#: queue counters that a rule judges over the window
WINDOW_COUNTERS = (*OUTCOMES, "bad_signature")


class _Tally:
    """What one worker saw of one task name in one queue since its last round trip."""

    __slots__ = ("run", "run_sum", "started", "timed_out", "wait", "wait_sum")

    def __init__(self) -> None:
        self.started = 0
        self.timed_out = 0
        self.wait = [0] * len(LE)
        self.wait_sum = 0.0
        self.run = [0] * len(LE)
        self.run_sum = 0.0


class MetricsMiddleware(Middleware):
    """Counts started and timed-out executions and records wait and run time histograms.

    Registered on every TaskQueue unless ``monitoring.metrics`` is false. A task costs a
    few list increments: the counts are tallied per task name and turned into stats fields
    once per round trip (``before_settle``), not once per task.
    """

    def __init__(self) -> None:
        self._fields: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...], str, str]] = {}
        self._tallies: dict[tuple[str, str], _Tally] = {}
        self._last: tuple[str, str, _Tally] | None = None

    def _names(self, task: str) -> tuple[str, str, tuple[str, ...], tuple[str, ...], str, str]:
        names = self._fields.get(task)
        if names is None:
            names = self._fields[task] = (
                "started|" + task,
                "timed_out|" + task,
                tuple(f"wait_bucket|{task}|{le}" for le in LE),
                tuple(f"runtime_bucket|{task}|{le}" for le in LE),
                "wait_sum_us|" + task,
                "runtime_sum_us|" + task,
            )
        return names

    def _tally(self, message: Message) -> _Tally:
        # a worker runs many tasks of one name in a row: the last tally is kept at hand
        last = self._last
        if last is not None and last[0] == message.task and last[1] == message.queue:
            return last[2]
        key = (message.queue, message.task)
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = _Tally()
        self._last = (message.task, message.queue, tally)
        return tally

    def before_task(self, worker: Worker, message: Message) -> None:
        self._tally(message).started += 1

    def after_task(self, worker: Worker, event: TaskEvent) -> None:
        t = self._tally(event.message)
        t.wait[bisect.bisect_left(BUCKETS, event.wait)] += 1
        t.wait_sum += event.wait
        t.run[bisect.bisect_left(BUCKETS, event.runtime)] += 1
        t.run_sum += event.runtime
        if event.timed_out:
            t.timed_out += 1

    def before_settle(self, worker: Worker) -> None:
        tallies, self._tallies = self._tallies, {}
        self._last = None
        add = worker.add_stat
        for (q, task), t in tallies.items():
            started, timed_out, wait_b, run_b, wait_sum, run_sum = self._names(task)
            if t.started:
                add(q, started, t.started)
            if t.timed_out:
                add(q, timed_out, t.timed_out)
            for counts, names, total, name in (
                (t.wait, wait_b, t.wait_sum, wait_sum),
                (t.run, run_b, t.run_sum, run_sum),
            ):
                observed = False
                for i, n in enumerate(counts):
                    if n:
                        add(q, names[i], n)
                        observed = True
                if observed:
                    add(q, name, int(total * 1_000_000))


def bucket_quantile(counts: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of observations counted per bucket (``counts``: one per bound, then
    one past the last; not cumulative), interpolating inside the bucket like Prometheus's
    ``histogram_quantile``; None without observations; past the last bound, that bound."""
    total = sum(counts)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i == len(bounds):
                return bounds[-1]
            low = bounds[i - 1] if i > 0 else 0.0
            return low + (bounds[i] - low) * max(0.0, rank - seen) / n
        seen += n
    return bounds[-1]


@dataclass(slots=True)
class Histogram:
    """Counts per bucket (not cumulative) and the sum of the observations, in seconds."""

    counts: list[int] = field(default_factory=lambda: [0] * len(LE))
    sum: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.counts)

    def add(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sum += other.sum

    def minus(self, other: Histogram) -> Histogram:
        """The observations made since ``other`` was taken (never negative)."""
        return Histogram(
            [max(0, a - b) for a, b in zip(self.counts, other.counts, strict=True)],
            max(0.0, self.sum - other.sum),
        )

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count of observations <= le)`` pairs, as Prometheus exports them."""
        out, total = [], 0
        for le, n in zip(LE, self.counts, strict=True):
            total += n
            out.append((le, total))
        return out

    def quantile(self, q: float) -> float | None:
        """Estimate of the ``q`` quantile, interpolating inside the bucket (like
        Prometheus's ``histogram_quantile``); ``None`` without observations. Observations
        past the last bound count as that bound."""
        return bucket_quantile(self.counts, BUCKETS, q)

    def summary(self) -> dict[str, Any]:
        """Count, sum, mean and p50/p95/p99 estimates (seconds), JSON-safe."""
        n = self.count
        return {
            "count": n,
            "sum": round(self.sum, 6),
            "avg": round(self.sum / n, 6) if n else None,
            "p50": _round(self.quantile(0.5)),
            "p95": _round(self.quantile(0.95)),
            "p99": _round(self.quantile(0.99)),
        }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


@dataclass(slots=True)
class TaskStats:
    """One task name's figures in one queue."""

    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TASK_COUNTERS, 0))
    wait: Histogram = field(default_factory=Histogram)
    runtime: Histogram = field(default_factory=Histogram)


@dataclass(slots=True)
class QueueStats:
    """A queue's counters (stats names, summed over its tasks) and its tasks' figures."""

    counters: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys([*TASK_COUNTERS, *QUEUE_COUNTERS], 0)
    )
    tasks: dict[str, TaskStats] = field(default_factory=dict)

    def histogram(self, kind: str) -> Histogram:
        """The queue's ``wait`` or ``runtime`` histogram: the sum of its tasks'."""
        total = Histogram()
        for t in self.tasks.values():
            total.add(t.wait if kind == "wait" else t.runtime)
        return total


def parse_stats(stats: dict[str, int]) -> QueueStats:
    """Read a queue's stats hash (as ``QueueInfo.stats``) into counters and histograms.

    Fields this module does not know are ignored, so other features may add their own.
    """
    out = QueueStats()
    for name, value in stats.items():
        head, sep, rest = name.partition("|")
        if not sep:
            if head in out.counters:
                out.counters[head] = value
            continue
        if head in ("wait_bucket", "runtime_bucket"):
            task, _, le = rest.rpartition("|")
            i = _LE_INDEX.get(le)
            if i is None or not task:
                continue
            t = out.tasks.setdefault(task, TaskStats())
            (t.wait if head == "wait_bucket" else t.runtime).counts[i] += value
        elif head in ("wait_sum_us", "runtime_sum_us"):
            t = out.tasks.setdefault(rest, TaskStats())
            (t.wait if head == "wait_sum_us" else t.runtime).sum += value / 1_000_000
        elif head in TASK_COUNTERS:
            out.tasks.setdefault(rest, TaskStats()).counters[head] = value
    # started and timed_out are only written per task: their queue totals are sums
    for name in ("started", "timed_out"):
        out.counters[name] = sum(t.counters[name] for t in out.tasks.values())
    return out


def public_counters(counters: dict[str, int], names: dict[str, str]) -> dict[str, int]:
    """Counters under their public names (``ok`` -> ``succeeded``)."""
    return {public: counters.get(stat, 0) for stat, public in names.items()}


def executions(counters: dict[str, int]) -> int:
    """Executions that reached an outcome: succeeded, retried, failed or dead."""
    return sum(counters.get(k, 0) for k in OUTCOMES)


def error_rate(counters: dict[str, int]) -> float | None:
    """Share of executions that raised (retried, failed or dead); ``None`` without any."""
    n = executions(counters)
    return None if n == 0 else round((n - counters.get("ok", 0)) / n, 6)
