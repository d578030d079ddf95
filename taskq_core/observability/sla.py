"""SLA rules: the conditions that raise alerts, each with its threshold from ``monitoring``.

=================  ====================================================  ========  ==========
rule               fires when                                            per       severity
=================  ====================================================  ========  ==========
queue_wait_p95     p95 of queue wait over the window > max_wait_p95      queue     warning
runtime_p95        p95 of run time over the window > max_runtime_p95     task      warning
error_rate         share of executions that raised over the window       queue     critical
                   > max_error_rate (once error_rate_min_tasks ran)
backlog            ready tasks > max_backlog                             queue     warning
oldest_age         oldest ready task waited > max_oldest_age (s)         queue     warning
worker_rss         a worker's RSS > max_worker_rss_mb                    worker    warning
memory_leak        a worker's RSS grows steadily (see memory.py)         worker    warning
no_worker          tasks are ready in a queue no live worker serves      queue     critical
bad_signature      messages refused for their signature over the window  queue     critical
                   (signing.py; never while signing is off)
=================  ====================================================  ========  ==========

A threshold of ``None`` (or ``alert_no_worker = false``) turns its rule off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .memory import MB
from .metrics import error_rate, executions

if TYPE_CHECKING:
    from ..settings import MonitoringSettings
    from .cluster import Cluster
    from .windows import Window


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    description: str
    unit: str
    severity: str
    per: str


RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule(
            "queue_wait_p95",
            "95th percentile of queue wait over the window",
            "seconds",
            "warning",
            "queue",
        ),
        Rule(
            "runtime_p95",
            "95th percentile of run time over the window",
            "seconds",
            "warning",
            "task",
        ),
        Rule(
            "error_rate",
            "share of executions that raised over the window",
            "ratio",
            "critical",
            "queue",
        ),
        Rule("backlog", "tasks ready to run", "tasks", "warning", "queue"),
        Rule("oldest_age", "age of the oldest ready task", "seconds", "warning", "queue"),
        Rule("worker_rss", "resident memory of a worker", "bytes", "warning", "worker"),
        Rule(
            "memory_leak", "steady growth of a worker's memory", "bytes/hour", "warning", "worker"
        ),
        Rule(
            "no_worker",
            "ready tasks in a queue that no live worker serves",
            "tasks",
            "critical",
            "queue",
        ),
        Rule(
            "bad_signature",
            "messages refused for a missing, unknown-key or wrong signature over the window",
            "messages",
            "critical",
            "queue",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class Condition:
    """One rule broken by one subject (a queue, a task or a worker) now."""

    rule: str
    subject: dict[str, str]
    value: float
    threshold: float
    message: str

    @property
    def key(self) -> str:
        return self.rule + ":" + ",".join(f"{k}={v}" for k, v in sorted(self.subject.items()))


def thresholds(m: MonitoringSettings) -> dict[str, float | None]:
    """Each rule's threshold in its unit; ``None`` when the rule is off."""
    rss = m.max_worker_rss_mb
    return {
        "queue_wait_p95": m.max_wait_p95,
        "runtime_p95": m.max_runtime_p95,
        "error_rate": m.max_error_rate,
        "backlog": float(m.max_backlog) if m.max_backlog is not None else None,
        "oldest_age": m.max_oldest_age,
        "worker_rss": rss * MB if rss is not None else None,
        "memory_leak": m.leak_mb_per_hour * MB,
        "no_worker": 0.0 if m.alert_no_worker else None,
        # one forged or tampered message is one too many
        "bad_signature": 0.0,
    }


def check(m: MonitoringSettings, cluster: Cluster, window: Window) -> list[Condition]:
    """Every condition that holds now."""
    t = thresholds(m)
    out: list[Condition] = []

    def over(rule: str, subject: dict[str, str], value: float | None, what: str) -> None:
        limit = t[rule]
        if limit is not None and value is not None and value > limit:
            out.append(Condition(rule, subject, value, limit, f"{what}: {value:g} > {limit:g}"))

    for name, qw in window.queues.items():
        over(
            "queue_wait_p95", {"queue": name}, qw.wait.quantile(0.95), f"queue {name} wait p95 (s)"
        )
        refused = float(qw.counters.get("bad_signature", 0))
        what = f"queue {name} messages refused for their signature"
        over("bad_signature", {"queue": name}, refused, what)
        if executions(qw.counters) >= m.error_rate_min_tasks:
            over("error_rate", {"queue": name}, error_rate(qw.counters), f"queue {name} error rate")
    for task, h in window.task_runtime().items():
        over("runtime_p95", {"task": task}, h.quantile(0.95), f"task {task} run time p95 (s)")
    per_queue = cluster.workers_per_queue()
    for info in cluster.queues:
        q = info.name
        over("backlog", {"queue": q}, float(info.ready), f"queue {q} ready tasks")
        over("oldest_age", {"queue": q}, cluster.oldest_age(info), f"queue {q} oldest task age (s)")
        if per_queue.get(q, 0) == 0:
            what = f"queue {q} has no live worker; ready tasks"
            over("no_worker", {"queue": q}, float(info.ready), what)
    for w in cluster.workers:
        wid = str(w["id"])
        rss = w.get("rss_bytes")
        over(
            "worker_rss",
            {"worker": wid},
            float(rss) if isinstance(rss, int) else None,
            f"worker {wid} RSS (bytes)",
        )
        mem = w.get("memory")
        if isinstance(mem, dict) and mem.get("leaking") is True:
            slope = float(mem.get("slope_bytes_per_hour") or 0)
            limit = t["memory_leak"] or 0.0
            out.append(
                Condition(
                    "memory_leak",
                    {"worker": wid},
                    slope,
                    limit,
                    f"worker {wid} memory grows {slope / MB:.1f} MB/hour steadily",
                )
            )
    return out


def describe(m: MonitoringSettings) -> list[dict[str, Any]]:
    """The rules with their thresholds (``/sla``)."""
    t = thresholds(m)
    return [
        {
            "rule": r.name,
            "description": r.description,
            "unit": r.unit,
            "severity": r.severity,
            "per": r.per,
            "threshold": t[r.name],
            "enabled": t[r.name] is not None,
        }
        for r in RULES.values()
    ]
