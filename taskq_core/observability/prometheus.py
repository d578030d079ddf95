"""Prometheus exposition built with prometheus_client from the cluster-wide figures.

:class:`TaskqCollector` is a custom collector: each scrape reads the broker, so one scrape of
any process (a web server, a sidecar) gives the numbers of every worker process on every
host, and the numbers never depend on which process is scraped. Register it in your own
registry (``REGISTRY.register(TaskqCollector(tq))``) or scrape ``/tasks/metrics/prometheus``.

Labels come only from known names: ``queue`` from the configured and used queues, ``task``
from the tasks registered in the scraping process (figures of any other task name are
summed under ``task="_other"``), so a stray message cannot create series. No worker id is a
label: per-worker series would churn with every restart. The application's own metrics
(:mod:`.custom`) follow as ``taskq_custom_<name>``, with the labels they declare.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder

from . import alerts, custom_report, facade
from .cluster import Cluster, collect
from .metrics import QUEUE_COUNTERS, TASK_COUNTERS, TaskStats

if TYPE_CHECKING:
    from ..app import TaskQueue

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OTHER = "_other"

_TASK_HELP = {
    "enqueued": "Tasks enqueued.",
    "started": "Executions started.",
    "succeeded": "Executions that succeeded.",
    "retried": "Executions that failed and were scheduled again.",
    "failed": "Executions that failed with no retry left (dead-lettered).",
    "dead": "Tasks dead-lettered without running to an outcome (poison, unknown task).",
    "timed_out": "Executions stopped by a time limit: soft (raised in the task) or hard (killed).",
    "expired": "Tasks not started before their expiry; not run.",
    "aborted": "Executions stopped on request (handle.abort()); not retried.",
}
_QUEUE_HELP = {
    "stale_acks": "Outcomes refused because the lease had moved on (fencing).",
    "lease_expired": "Leases that lapsed (worker killed or frozen); the task was re-queued.",
    "released": "Tasks handed back by a stopping worker.",
    "released_counted": (
        "Tasks handed back as a delivery without an outcome (worker process crashed,"
        " internal error): counted toward max_deliveries."
    ),
    "cancelled": "Tasks cancelled before they ran.",
    "orphans": "Queued ids without a message, dead-lettered (MissingMessage).",
    "dead_retried": "Dead-lettered tasks sent back to their queue.",
    "dead_purged": "Dead-lettered tasks deleted.",
    "bad_signatures": "Messages refused for a missing, unknown-key or wrong signature.",
    "throttled": "Tasks held back by a rate limit (delayed until it allows them; not an attempt).",
    "capped": "Tasks that waited for a concurrency slot (not an attempt).",
    "abort_requested": "Running tasks asked to abort.",
    "workflows_started": "Workflows started (counted in the queue of their first step).",
    "workflows_succeeded": "Workflows whose every step succeeded or was skipped.",
    "workflows_failed": "Workflows that failed (a step failed under their policy).",
    "workflows_cancelled": "Workflows cancelled.",
    "workflows_retried": "Failed or cancelled workflows run again from their failed steps.",
}


def _merge(into: TaskStats, other: TaskStats) -> None:
    for k, v in other.counters.items():
        into.counters[k] = into.counters.get(k, 0) + v
    into.wait.add(other.wait)
    into.runtime.add(other.runtime)


def task_series(app: TaskQueue, cluster: Cluster) -> dict[tuple[str, str], TaskStats]:
    """Per ``(queue, task)`` label pair: registered task names kept, others summed."""
    out: dict[tuple[str, str], TaskStats] = {}
    for queue, stats in cluster.stats.items():
        for task, t in stats.tasks.items():
            label = task if task in app.registry else OTHER
            _merge(out.setdefault((queue, label), TaskStats()), t)
    return out


class TaskqCollector:
    """A prometheus_client collector of one TaskQueue's cluster-wide figures."""

    def __init__(self, app: TaskQueue) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        # nothing to describe up front: registering must not read the broker
        return []

    def collect(self) -> Iterator[Metric]:
        app = self.app
        c = collect(app)
        series = task_series(app, c)
        for stat, public in TASK_COUNTERS.items():
            fam = CounterMetricFamily(
                f"taskq_tasks_{public}", _TASK_HELP[public], labels=["queue", "task"]
            )
            for (queue, task), t in sorted(series.items()):
                fam.add_metric([queue, task], t.counters.get(stat, 0))
            yield fam
        for stat, public in QUEUE_COUNTERS.items():
            fam = CounterMetricFamily(f"taskq_{public}", _QUEUE_HELP[public], labels=["queue"])
            for info in c.queues:
                fam.add_metric([info.name], c.stats[info.name].counters.get(stat, 0))
            yield fam
        for kind, doc in (
            ("wait", "Seconds from enqueue (or due time) to start."),
            ("runtime", "Seconds an execution ran."),
        ):
            hist = HistogramMetricFamily(
                f"taskq_task_{kind}_seconds", doc, labels=["queue", "task"]
            )
            for (queue, task), t in sorted(series.items()):
                h = t.wait if kind == "wait" else t.runtime
                hist.add_metric([queue, task], h.cumulative(), h.sum)
            yield hist
        yield from self._gauges(c)
        yield from custom_report.families(app)

    def _gauges(self, c: Cluster) -> Iterator[Metric]:
        per_queue = c.workers_per_queue()
        gauges: list[tuple[str, str, list[float]]] = [
            ("depth", "Tasks ready to run.", [i.ready for i in c.queues]),
            (
                "delayed",
                "Tasks waiting for their due time or a retry.",
                [i.delayed for i in c.queues],
            ),
            ("in_flight", "Tasks leased by a worker.", [i.leased for i in c.queues]),
            (
                "waiting",
                "Tasks waiting for a concurrency slot (flow control).",
                [i.waiting for i in c.queues],
            ),
            ("dead_letter", "Tasks in the dead-letter queue.", [i.dead for i in c.queues]),
            (
                "oldest_age_seconds",
                "Age of the oldest ready task (0 when none).",
                [c.oldest_age(i) or 0.0 for i in c.queues],
            ),
            (
                "workers",
                "Live workers serving the queue.",
                [per_queue.get(i.name, 0) for i in c.queues],
            ),
        ]
        for name, doc, values in gauges:
            fam = GaugeMetricFamily(f"taskq_queue_{name}", doc, labels=["queue"])
            for info, value in zip(c.queues, values, strict=True):
                fam.add_metric([info.name], float(value))
            yield fam
        w = c.workers
        rss = [int(x.get("rss_bytes") or 0) for x in w]
        leaking = [x for x in w if isinstance(x.get("memory"), dict) and x["memory"].get("leaking")]
        for name, doc, val in (
            ("taskq_workers", "Live worker processes.", len(w)),
            ("taskq_worker_busy_slots", "Slots running a task.", _sum(w, "busy")),
            ("taskq_worker_concurrency", "Slots of all live workers.", _sum(w, "concurrency")),
            ("taskq_worker_rss_bytes", "Resident memory of all live workers.", sum(rss)),
            ("taskq_worker_rss_max_bytes", "Largest worker resident memory.", max(rss, default=0)),
            ("taskq_workers_leaking", "Workers whose memory grows steadily.", len(leaking)),
        ):
            yield GaugeMetricFamily(name, doc, value=float(val))
        sup = facade.autoscaler(self.app)["supervisors"]
        for name, doc, key in (
            ("taskq_autoscaler_processes", "Worker processes the supervisors run.", "processes"),
            ("taskq_autoscaler_target", "Worker processes the supervisors aim for.", "target"),
        ):
            yield GaugeMetricFamily(name, doc, value=float(_sum(sup, key)))
        fam = GaugeMetricFamily(
            "taskq_alerts_active", "Active alerts.", labels=["rule", "severity"]
        )
        counts: dict[tuple[str, str], int] = {}
        for a in alerts.state(self.app, history=1)["active"]:
            k = (str(a.get("rule")), str(a.get("severity")))
            counts[k] = counts.get(k, 0) + 1
        for (rule, severity), n in sorted(counts.items()):
            fam.add_metric([rule, severity], float(n))
        yield fam


def _sum(records: list[dict[str, object]], key: str) -> int:
    return sum(v for r in records if isinstance(v := r.get(key), int))


def exposition(app: TaskQueue) -> bytes:
    """The text exposition (format 0.0.4) of one scrape."""
    return negotiated(app, "")[0]


def negotiated(app: TaskQueue, accept: str) -> tuple[bytes, str]:
    """One scrape in the format the ``Accept`` header asks for, and its content type:
    OpenMetrics 1.0 when the scraper offers it (as Prometheus does), else the text format
    0.0.4. prometheus_client's own negotiation, so both stay what its parsers accept."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TaskqCollector(app))
    if not accept:
        return generate_latest(registry), CONTENT_TYPE
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
