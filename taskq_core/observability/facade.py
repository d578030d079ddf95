"""The façade: every figure the HTTP routes (and the CLI) show, as plain JSON-safe dicts.

Nothing here knows a web framework. Each function reads the broker (so the figures are the
whole cluster's, whatever process asks) and returns a dict whose shape is described by a
schema in :mod:`taskq_core.http.schemas`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import platform
import socket
import sys
from typing import TYPE_CHECKING, Any

import orjson
import psutil

from ..brokers.base import DeadTask, TaskState
from ..handle import describe
from ..message import stored_dict
from ..redact import redact_url
from . import alerts, custom_report, health, sla, windows
from .cluster import Cluster, collect
from .memory import process_rss
from .metrics import (
    QUEUE_COUNTERS,
    TASK_COUNTERS,
    QueueStats,
    error_rate,
    public_counters,
)

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..brokers.base import QueueInfo


def _version() -> str:
    from .. import __version__

    return __version__


def queue_figures(cluster: Cluster, info: QueueInfo, stats: QueueStats) -> dict[str, Any]:
    """One queue: gauges, counters, wait and run time summaries, and per-task figures."""
    counters = public_counters(stats.counters, {**TASK_COUNTERS, **QUEUE_COUNTERS})
    return {
        "name": info.name,
        "depth": info.ready,
        "delayed": info.delayed,
        "in_flight": info.leased,
        "dead_letter": info.dead,
        "waiting": info.waiting,
        "oldest_age_seconds": cluster.oldest_age(info),
        "workers": cluster.workers_per_queue().get(info.name, 0),
        "counters": counters,
        "error_rate": error_rate(stats.counters),
        "wait": stats.histogram("wait").summary(),
        "runtime": stats.histogram("runtime").summary(),
        "tasks": [
            {
                "task": name,
                "counters": public_counters(t.counters, TASK_COUNTERS),
                "error_rate": error_rate(t.counters),
                "wait": t.wait.summary(),
                "runtime": t.runtime.summary(),
            }
            for name, t in sorted(stats.tasks.items())
        ],
    }


def queues(app: TaskQueue, cluster: Cluster | None = None) -> dict[str, Any]:
    c = cluster or collect(app)
    return {
        "generated_at": c.at_ms,
        "queues": [queue_figures(c, i, c.stats[i.name]) for i in c.queues],
    }


def workers(app: TaskQueue, cluster: Cluster | None = None) -> dict[str, Any]:
    c = cluster or collect(app)
    return {
        "generated_at": c.at_ms,
        "alive": len(c.workers),
        "busy": sum(int(w.get("busy", 0)) for w in c.workers),
        "concurrency": sum(int(w.get("concurrency", 0)) for w in c.workers),
        "per_queue": c.workers_per_queue(),
        "workers": c.workers,
    }


def summary(app: TaskQueue, cluster: Cluster | None = None) -> dict[str, Any]:
    """Cluster totals in one flat object."""
    c = cluster or collect(app)
    totals = c.totals()
    concurrency = sum(int(w.get("concurrency", 0)) for w in c.workers)
    busy = sum(int(w.get("busy", 0)) for w in c.workers)
    outcomes = {
        "ok": totals["succeeded"],
        "retry": totals["retried"],
        "failed": totals["failed"],
        "dead": totals["dead"],
    }
    return {
        "generated_at": c.at_ms,
        **{k: totals[k] for k in TASK_COUNTERS.values()},
        "error_rate": error_rate(outcomes),
        "depth": sum(i.ready for i in c.queues),
        "delayed": sum(i.delayed for i in c.queues),
        "in_flight": sum(i.leased for i in c.queues),
        "dead_letter": sum(i.dead for i in c.queues),
        "queues": len(c.queues),
        "workers": len(c.workers),
        "busy": busy,
        "concurrency": concurrency,
        "utilisation": round(busy / concurrency, 4) if concurrency else None,
        "alerts_active": len(alerts.state(app, history=1)["active"]),
    }


def metrics(app: TaskQueue) -> dict[str, Any]:
    """Everything at once: totals, queues, workers and the application's own metrics
    (``/metrics``; ``custom``: see custom_report.report)."""
    c = collect(app)
    return {
        "generated_at": c.at_ms,
        "totals": c.totals(),
        "queues": queues(app, c)["queues"],
        "workers": workers(app, c),
        "custom": custom_report.report(app),
    }


def performance(app: TaskQueue) -> dict[str, Any]:
    """Per task since the start, and per queue and task over the SLA window."""
    c = collect(app)
    tasks = []
    for qname, s in c.stats.items():
        for name, t in sorted(s.tasks.items()):
            tasks.append(
                {
                    "task": name,
                    "queue": qname,
                    "executions": t.runtime.count,
                    "counters": public_counters(t.counters, TASK_COUNTERS),
                    "error_rate": error_rate(t.counters),
                    "runtime": t.runtime.summary(),
                    "wait": t.wait.summary(),
                }
            )
    return {
        "generated_at": c.at_ms,
        "tasks": tasks,
        "window": windows.current(app, c).to_dict(),
    }


def memory(app: TaskQueue) -> dict[str, Any]:
    """RSS and memory trend of every worker, and of this process."""
    c = collect(app)
    rows = []
    for w in c.workers:
        mem = w.get("memory") if isinstance(w.get("memory"), dict) else {}
        rows.append({"id": w["id"], "rss_bytes": w.get("rss_bytes"), "trend": mem})
    return {
        "generated_at": c.at_ms,
        "process": {"pid": os.getpid(), "rss_bytes": process_rss()},
        "workers": rows,
        "leaking": [r["id"] for r in rows if r["trend"].get("leaking") is True],
        "total_worker_rss_bytes": sum(int(r["rss_bytes"] or 0) for r in rows),
    }


def uptime(app: TaskQueue) -> dict[str, Any]:
    """This process's uptime and the age of the oldest live worker."""
    c = collect(app)
    starts = [int(w["started_at"]) for w in c.workers if isinstance(w.get("started_at"), int)]
    oldest = min(starts, default=None)
    return {
        "started_at": int(health.STARTED * 1000),
        "uptime_seconds": health.uptime(),
        "workers": len(c.workers),
        "oldest_worker_started_at": oldest,
        "oldest_worker_uptime_seconds": (
            round(max(0, c.at_ms - oldest) / 1000, 3) if oldest is not None else None
        ),
    }


def system(app: TaskQueue) -> dict[str, Any]:
    """This host and process: versions, CPU, load, memory."""
    proc = psutil.Process()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    vm = psutil.virtual_memory()
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "taskq_version": _version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": list(load) if load else None,
        "memory_total_bytes": int(vm.total),
        "memory_available_bytes": int(vm.available),
        "process": {
            "rss_bytes": int(proc.memory_info().rss),
            "threads": proc.num_threads(),
            "uptime_seconds": health.uptime(),
        },
        "broker": {"url": redact_url(app.broker.url), "prefix": app.settings.key_prefix},
    }


def registry(app: TaskQueue) -> dict[str, Any]:
    """The tasks this process has registered, and the configured queues."""
    tasks = []
    for name, t in sorted(app.registry.items()):
        p = t.policy
        tasks.append(
            {
                "name": name,
                "queue": t.routed_queue,
                "requires": sorted(t.requires),
                "is_async": t.is_async,
                "timeout": t.timeout,
                "max_retries": p.max_retries,
                "retry_backoff": p.backoff,
                "retry_backoff_max": p.backoff_max,
                "retry_jitter": p.jitter,
            }
        )
    return {"tasks": tasks, "queues": list(app.settings.queues)}


def status(app: TaskQueue) -> dict[str, Any]:
    """One glance: health, queues, workers and alerts."""
    h = health.check(app)
    out: dict[str, Any] = {
        "status": h["status"],
        "version": _version(),
        "uptime_seconds": health.uptime(),
        "components": {k: v["status"] for k, v in h["components"].items()},
        "queues": {},
        "workers": 0,
        "alerts_active": None,
    }
    if h["components"]["broker"]["status"] != "unhealthy":
        c = collect(app, health.probe(app))
        out["queues"] = {
            i.name: {"depth": i.ready, "in_flight": i.leased, "dead_letter": i.dead}
            for i in c.queues
        }
        out["workers"] = len(c.workers)
        out["alerts_active"] = len(alerts.state(app, history=1)["active"])
    return out


def alert_state(app: TaskQueue, limit: int) -> dict[str, Any]:
    """Active alerts and recent events, evaluating first when the cluster's turn is due."""
    alerts.evaluate(app)
    return alerts.state(app, history=limit)


def sla_report(app: TaskQueue) -> dict[str, Any]:
    """The rules, their thresholds, and the active alerts of each."""
    alerts.evaluate(app)
    active = alerts.state(app, history=1)["active"]
    rules = sla.describe(app.settings.monitoring)
    for r in rules:
        r["violations"] = [a for a in active if a.get("rule") == r["rule"]]
        r["status"] = "violated" if r["violations"] else ("ok" if r["enabled"] else "disabled")
    return {"window_seconds": app.settings.monitoring.sla_window, "rules": rules}


def autoscaler(app: TaskQueue) -> dict[str, Any]:
    """The autoscaler decisions the supervisors published (contract 2); none without one."""
    try:
        # looked up by name: the supervisor is an optional part of the core
        publish = importlib.import_module("taskq_core.supervisor.publish")
    except ImportError:
        return {"supervisors": []}
    records = publish.read_autoscaler(app)
    return {"supervisors": [r for r in records if isinstance(r, dict)]}


def _describe(state: TaskState | None) -> dict[str, Any] | None:
    """``handle.describe`` that survives an unreadable message or record (a bad message
    can sit in the dead-letter queue), and without the traceback: a task's traceback stays
    out of HTTP answers (``taskq failed list`` shows it)."""
    if state is None:
        return None
    try:
        found = describe(state)
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError):
        found = None
    if found is None:
        found = {"id": state.id, "queue": state.queue, "status": state.state or "unknown"}
        found.update(task=None, deliveries=state.deliveries, attempts=0)
        found.update(enqueued_at=None, finished_at=None)
    error = found.get("error")
    if isinstance(error, dict):
        found["error"] = {
            "type": str(error.get("type", "")),
            "message": str(error.get("message", "")),
        }
    elif "error" in found:
        found["error"] = {"type": "", "message": str(error)}
    found.update(_call(state))
    return found


def _call(state: TaskState) -> dict[str, Any]:
    """The task's arguments and when it last started, from its message and record (the
    route that shows them is private: ``results`` and ``errors``)."""
    out: dict[str, Any] = {}
    with contextlib.suppress(orjson.JSONDecodeError, TypeError, ValueError):
        message = stored_dict(state.message, state.id, state.queue)
        if isinstance(message, dict) and isinstance(message.get("args"), list):
            out["args"] = message["args"]
        if isinstance(message, dict) and isinstance(message.get("kwargs"), dict):
            out["kwargs"] = message["kwargs"]
    with contextlib.suppress(orjson.JSONDecodeError, TypeError, ValueError):
        record = orjson.loads(state.record) if state.record else {}
        if isinstance(record, dict) and isinstance(record.get("started_at"), int):
            out["started_at"] = record["started_at"]
    return out


def job(app: TaskQueue, task_id: str, queue: str | None = None) -> dict[str, Any] | None:
    """A task's description (status, attempts, timings, progress, result or error), or None
    if unknown; with ``http.show_arguments``, its arguments too."""
    if queue is None:
        handle = app.find(task_id)
        if handle is None:
            return None
        queue = handle.queue
    found = _describe(app.broker.get(queue, task_id))
    if found is not None and not app.settings.http.show_arguments:
        found.pop("args", None)
        found.pop("kwargs", None)
    return found


def failed(app: TaskQueue, queue: str | None, offset: int, limit: int) -> dict[str, Any]:
    """Dead-lettered tasks (failed or dead), oldest first, one queue or every queue."""
    names = [queue] if queue else app.queues()
    infos = {i.name: i.dead for i in app.broker.queue_info(names)}
    items: list[dict[str, Any]] = []
    skip = offset
    for name in names:
        if len(items) >= limit:
            break
        if skip >= infos.get(name, 0):
            skip -= infos.get(name, 0)
            continue
        for d in app.broker.dead_list(name, skip, limit - len(items)):
            items.append(dead_item(d))
        skip = 0
    return {"total": sum(infos.values()), "offset": offset, "limit": limit, "items": items}


def dead_item(d: DeadTask) -> dict[str, Any]:
    """A dead-lettered task as JSON: what failed, when, and why (without traceback)."""
    info = _describe(TaskState(d.id, d.queue, d.state, d.error, d.message)) or {}
    error = info.get("error") or {"type": "", "message": ""}
    return {
        "id": d.id,
        "queue": d.queue,
        "task": info.get("task"),
        "state": d.state,
        "dead_at": d.dead_at_ms,
        "attempts": info.get("attempts"),
        "error": error,
    }
