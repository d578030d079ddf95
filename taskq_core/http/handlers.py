"""The routes: method, path, handler, query parameters and response schema of each.

Handlers take a :class:`~taskq_core.http.routes.Call` and return a
:class:`~taskq_core.http.types.Response`; the figures come from
:mod:`taskq_core.observability`, which knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from ..observability import diagnostics, facade, health, prometheus
from . import schemas as s
from .access import PRIVATE
from .routes import Call, HttpError
from .types import Response, Route

Handler = Callable[[Call], Response]

QUEUE_PARAM = {"type": "string", "pattern": r"^[A-Za-z0-9_.:\-]{1,64}$"}
ID_PARAM = {"type": "string", "pattern": r"^[A-Za-z0-9_.:\-]{1,100}$"}


def q(schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    """A query parameter declaration: its schema (with any default) and description."""
    return {"schema": schema, "description": description, "required": required}


def _int(low: int, high: int, default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high, "default": default}


def ok(data: Any) -> Response:
    return Response.json(200, data)


# -- read routes


def index(c: Call) -> Response:
    t = c.table
    routes = [
        {
            "method": r.method,
            "path": t.prefix + r.path,
            "summary": r.summary,
            "admin": r.admin,
            "auth": t.needs_auth(r),
        }
        for r in t.routes
    ]
    return ok(
        {
            "name": "taskq",
            "version": facade.system(c.app)["taskq_version"],
            "openapi": t.prefix + "/openapi.json",
            "routes": routes,
        }
    )


def openapi(c: Call) -> Response:
    return ok(c.table.openapi())


def _withhold_hosts(c: Call, report: dict[str, Any]) -> dict[str, Any]:
    """Health is open to anyone, and a broker error's text names the broker's host and port:
    unless the application opened the ``hosts`` class, only the error's type is shown (the
    server log has the rest)."""
    if "hosts" in c.table.open:
        return report
    parts = [report, *report.get("components", {}).values()]
    for part in parts:
        if isinstance(part.get("error"), str):
            part["error"] = part["error"].split(":", 1)[0]
    return report


def health_check(c: Call) -> Response:
    report = _withhold_hosts(c, health.check(c.app))
    return Response.json(health.http_status(report["status"]), report)


def health_live(c: Call) -> Response:
    return ok(health.live())


def health_ready(c: Call) -> Response:
    report = _withhold_hosts(c, health.ready(c.app))
    return Response.json(200 if report["status"] == "ready" else 503, report)


def prometheus_text(c: Call) -> Response:
    body, content_type = prometheus.negotiated(c.app, c.request.headers.get("accept", ""))
    return Response(200, {"content-type": content_type, "cache-control": "no-store"}, body)


def job(c: Call) -> Response:
    task_id = c.params["id"]
    found = facade.job(c.app, task_id, c.query["queue"])
    if found is None:
        raise HttpError(404, f"no task {task_id} (unknown, or its result expired)")
    return ok(found)


def failed(c: Call) -> Response:
    queue = c.query["queue"]
    if queue is not None:
        _known_queue(c, queue)
    return ok(facade.failed(c.app, queue, c.query["offset"], c.query["limit"]))


def _simple(fn: Callable[[Any], dict[str, Any]]) -> Handler:
    def handler(c: Call) -> Response:
        return ok(fn(c.app))

    handler.__name__ = fn.__name__
    return handler


# -- admin routes


def _known_queue(c: Call, queue: str) -> None:
    if queue not in c.app.queues():
        raise HttpError(404, f"no queue {queue!r}")


def _dead_ids(c: Call) -> list[str]:
    queue = c.params["queue"]
    _known_queue(c, queue)
    ids, everything = c.query["id"], c.query["all"]
    if bool(ids) == bool(everything):
        raise HttpError(400, "give either id=... (one or more) or all=true")
    if ids:
        return list(dict.fromkeys(ids))
    return [d.id for d in c.app.broker.dead_list(queue, 0, c.query["limit"])]


def dead_retry(c: Call) -> Response:
    ids = _dead_ids(c)
    n = c.app.broker.dead_retry(c.params["queue"], ids)
    return ok({"queue": c.params["queue"], "requested": len(ids), "retried": n})


def dead_purge(c: Call) -> Response:
    ids = _dead_ids(c)
    n = c.app.broker.dead_purge(c.params["queue"], ids)
    return ok({"queue": c.params["queue"], "requested": len(ids), "purged": n})


def cancel(c: Call) -> Response:
    task_id = c.params["id"]
    queue = c.query["queue"]
    handle = c.app.handle(task_id, queue) if queue else c.app.find(task_id)
    if handle is None:
        raise HttpError(404, f"no task {task_id}")
    record = orjson.dumps({"status": "cancelled", "finished_at": int(c.app.clock.time() * 1000)})
    outcome = c.app.broker.cancel(handle.queue, task_id, record)
    if outcome == "cancelled":
        return ok({"id": task_id, "queue": handle.queue, "cancelled": True, "status": outcome})
    # refused: running or dead-lettered (the script says), or already finished
    current = facade.job(c.app, task_id, handle.queue)
    status = outcome or (current["status"] if current else "")
    if not status:
        raise HttpError(404, f"no task {task_id} in queue {handle.queue!r}")
    raise HttpError(409, f"task {task_id} is {status}: only queued or scheduled tasks cancel")


_SELECT = {
    "id": q(
        {"type": "array", "items": ID_PARAM, "maxItems": 100},
        "Ids of dead-lettered tasks (repeat the parameter, at most 100).",
    ),
    "all": q({"type": "boolean", "default": False}, "Act on the oldest `limit` tasks instead."),
    "limit": q(_int(1, 1000, 100), "With all=true: how many, oldest first."),
}


#: what each read route can reveal (classes of :mod:`taskq_core.http.access`); a route not
#: listed here exposes every private class, so a new route is private until declared
EXPOSES: dict[str, tuple[str, ...]] = {
    "index": ("metrics",),
    "openapi": ("metrics",),
    "health": ("health",),
    "health_live": ("health",),
    "health_ready": ("health",),
    "status": ("metrics",),
    "metrics_summary": ("metrics",),
    "metrics_queues": ("metrics",),
    "metrics_performance": ("metrics",),
    "metrics_prometheus": ("metrics",),
    "uptime": ("metrics",),
    # worker ids are host:pid, and heartbeats carry host, pid and the ids of running tasks
    "metrics": ("hosts",),
    "metrics_system": ("hosts", "config"),
    "metrics_workers": ("hosts",),
    "metrics_memory": ("hosts",),
    "metrics_autoscaler": ("hosts",),
    # an alert's subject may be a worker (memory rule)
    "alerts": ("hosts",),
    "sla": ("hosts",),
    "registry": ("config",),
    "diagnostics": ("config", "errors", "hosts"),
    "job": ("results", "errors"),
    "failed": ("errors",),
}


def build_routes() -> list[Route]:
    """Every route, in the order the index and the OpenAPI document list them."""
    queue = q(QUEUE_PARAM, "Queue of the task (default: search every queue).")
    get = [
        ("/", "index", index, s.INDEX, "Index of the routes.", {}),
        ("/openapi.json", "openapi", openapi, s.OPENAPI, "This API's OpenAPI document.", {}),
        ("/health", "health", health_check, s.HEALTH,
         "Health with component status; 503 when unhealthy.", {}),
        ("/health/live", "health_live", health_live, s.LIVE,
         "Liveness: the process answers (never touches the broker).", {}),
        ("/health/ready", "health_ready", health_ready, s.READY,
         "Readiness: the broker answers; 503 when it does not.", {}),
        ("/status", "status", _simple(facade.status), s.STATUS,
         "Health, queues, workers and alerts at a glance.", {}),
        ("/metrics", "metrics", _simple(facade.metrics), s.METRICS,
         "Totals, queues and workers of the whole cluster.", {}),
        ("/metrics/system", "metrics_system", _simple(facade.system), s.SYSTEM,
         "This host and process.", {}),
        ("/metrics/performance", "metrics_performance", _simple(facade.performance),
         s.PERFORMANCE, "Per-task run and wait times, and the SLA window.", {}),
        ("/metrics/autoscaler", "metrics_autoscaler", _simple(facade.autoscaler),
         s.AUTOSCALER, "Decisions the autoscalers published.", {}),
        ("/metrics/queues", "metrics_queues", _simple(facade.queues), s.QUEUES,
         "Each queue: gauges, counters, wait and run times, per task.", {}),
        ("/metrics/workers", "metrics_workers", _simple(facade.workers), s.WORKERS,
         "Live workers and their heartbeats.", {}),
        ("/metrics/memory", "metrics_memory", _simple(facade.memory), s.MEMORY,
         "Worker memory and its trend (leak detection).", {}),
        ("/metrics/summary", "metrics_summary", _simple(facade.summary), s.SUMMARY_ROUTE,
         "Cluster totals in one flat object.", {}),
        ("/metrics/prometheus", "metrics_prometheus", prometheus_text, None,
         "Prometheus text exposition (format 0.0.4).", {}),
        ("/registry", "registry", _simple(facade.registry), s.REGISTRY,
         "Registered tasks and configured queues.", {}),
        ("/alerts", "alerts", lambda c: ok(facade.alert_state(c.app, c.query["limit"])),
         s.ALERTS, "Active alerts and recent alert events.",
         {"limit": q(_int(1, 1000, 50), "Events of the history to return, newest first.")}),
        ("/sla", "sla", _simple(facade.sla_report), s.SLA,
         "SLA rules, thresholds and current violations.", {}),
        ("/diagnostics", "diagnostics",
         lambda c: ok(diagnostics.report(c.app, c.query["failures"])), s.DIAGNOSTICS,
         "Configuration (redacted), versions, queues, workers, failures, alerts, Redis.",
         {"failures": q(_int(0, 100, 10), "Recent failures listed per queue.")}),
        ("/uptime", "uptime", _simple(facade.uptime), s.UPTIME,
         "This process's uptime and the oldest worker's.", {}),
        ("/jobs/{id}", "job", job, s.JOB, "One task: status, attempts, result or error.",
         {"queue": queue}),
        ("/failed", "failed", failed, s.FAILED, "Dead-lettered tasks, oldest first.",
         {"queue": q(QUEUE_PARAM, "Only this queue (default: every queue)."),
          "offset": q(_int(0, 1_000_000, 0), "Tasks to skip."),
          "limit": q(_int(1, 500, 50), "Tasks to return.")}),
    ]  # fmt: skip
    post = [
        ("/failed/{queue}/retry", "failed_retry", dead_retry, s.RETRIED,
         "Send dead-lettered tasks back to their queue.", _SELECT),
        ("/failed/{queue}/purge", "failed_purge", dead_purge, s.PURGED,
         "Delete dead-lettered tasks for good.", _SELECT),
        ("/jobs/{id}/cancel", "job_cancel", cancel, s.CANCELLED,
         "Cancel a queued or scheduled task.", {"queue": queue}),
    ]  # fmt: skip
    routes = [
        Route("GET", path, name, handler, False, summary, schema, query, EXPOSES.get(name, PRIVATE))
        for path, name, handler, schema, summary, query in get
    ]
    routes += [
        Route("POST", path, name, handler, True, summary, schema, query)
        for path, name, handler, schema, summary, query in post
    ]
    return routes
