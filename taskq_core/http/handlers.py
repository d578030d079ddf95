"""The routes: method, path, handler, query parameters and response schema of each.

Handlers take a :class:`~taskq_core.http.routes.RouteCall` and return a
:class:`~taskq_core.http.types.Response`; the figures come from
:mod:`taskq_core.observability`, which knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from .. import dashboard
from ..clock import script_ms
from ..observability import diagnostics, facade, health, prometheus
from ..workflow.handle import describe as describe_workflow
from . import schemas
from .routes import ID_PARAM, QUEUE_PARAM, HttpError, RouteCall
from .types import Response, Route

Handler = Callable[[RouteCall], Response]


def param(schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    """A query parameter declaration: its schema (with any default) and description."""
    return {"schema": schema, "description": description, "required": required}


def _int(low: int, high: int, default: int) -> dict[str, Any]:
    return {"type": "integer", "minimum": low, "maximum": high, "default": default}


def ok(data: Any) -> Response:
    return Response.json(200, data)


# -- read routes


def index(call: RouteCall) -> Response:
    table = call.table
    routes = [
        {
            "method": route.method,
            "path": table.public_path(route),
            "summary": route.summary,
            "admin": route.admin,
            "auth": table.needs_auth(route),
        }
        for route in table.routes
    ]
    return ok(
        {
            "name": "taskq",
            "version": facade.system(call.app)["taskq_version"],
            "openapi": table.prefix + "/openapi.json",
            "routes": routes,
        }
    )


def openapi(call: RouteCall) -> Response:
    return ok(call.table.openapi())


def _withhold_hosts(call: RouteCall, report: dict[str, Any]) -> dict[str, Any]:
    """Health is open to anyone, and a broker error's text names the broker's host and port:
    unless the application opened the ``hosts`` class, only the error's type is shown (the
    server log has the rest)."""
    if "hosts" in call.table.open:
        return report
    parts = [report, *report.get("components", {}).values()]
    for part in parts:
        if isinstance(part.get("error"), str):
            part["error"] = part["error"].split(":", 1)[0]
    return report


def health_check(call: RouteCall) -> Response:
    report = _withhold_hosts(call, health.check(call.app))
    return Response.json(health.http_status(report["status"]), report)


def health_live(call: RouteCall) -> Response:
    return ok(health.live())


def health_ready(call: RouteCall) -> Response:
    report = _withhold_hosts(call, health.ready(call.app))
    return Response.json(200 if report["status"] == "ready" else 503, report)


def prometheus_text(call: RouteCall) -> Response:
    accept = call.request.headers.get("accept", "")
    body, content_type = prometheus.negotiated(call.app, accept)
    return Response(200, {"content-type": content_type, "cache-control": "no-store"}, body)


def alerts(call: RouteCall) -> Response:
    return ok(facade.alert_state(call.app, call.query["limit"]))


def diagnostics_report(call: RouteCall) -> Response:
    return ok(diagnostics.report(call.app, call.query["failures"]))


def job(call: RouteCall) -> Response:
    task_id = call.params["id"]
    found = facade.job(call.app, task_id, call.query["queue"])
    if found is None:
        raise HttpError(404, f"no task {task_id} (unknown, or its result expired)")
    return ok(found)


def workflow(call: RouteCall) -> Response:
    wid = call.params["id"]
    found = describe_workflow(wid, call.app.broker.wf_get(wid))
    if found is None:
        raise HttpError(404, f"no workflow {wid} (unknown, or its record expired)")
    return ok(found)


def failed(call: RouteCall) -> Response:
    queue = call.query["queue"]
    if queue is not None:
        _known_queue(call, queue)
    return ok(facade.failed(call.app, queue, call.query["offset"], call.query["limit"]))


def _simple(fn: Callable[[Any], dict[str, Any]]) -> Handler:
    def handler(call: RouteCall) -> Response:
        return ok(fn(call.app))

    handler.__name__ = fn.__name__
    return handler


# -- admin routes


def _known_queue(call: RouteCall, queue: str) -> None:
    if queue not in call.app.queues():
        raise HttpError(404, f"no queue {queue!r}")


def _dead_ids(call: RouteCall) -> list[str]:
    queue = call.params["queue"]
    _known_queue(call, queue)
    # exactly one of them is given: the route's exactly_one rule (RouteTable checks it)
    ids = call.query["id"]
    if ids:
        return list(dict.fromkeys(ids))
    return [d.id for d in call.app.broker.dead_list(queue, 0, call.query["limit"])]


def dead_retry(call: RouteCall) -> Response:
    ids = _dead_ids(call)
    retried = call.app.broker.dead_retry(call.params["queue"], ids)
    return ok({"queue": call.params["queue"], "requested": len(ids), "retried": retried})


def dead_purge(call: RouteCall) -> Response:
    ids = _dead_ids(call)
    purged = call.app.broker.dead_purge(call.params["queue"], ids)
    return ok({"queue": call.params["queue"], "requested": len(ids), "purged": purged})


def _stop(call: RouteCall, abort: bool) -> tuple[str, str]:
    """Cancel (or, with ``abort``, also ask a running task to stop) the task of the route;
    its queue and what became of it, or the 404/409 that explains why nothing did."""
    task_id = call.params["id"]
    queue = call.query["queue"]
    handle = call.app.handle(task_id, queue) if queue else call.app.find(task_id)
    if handle is None:
        raise HttpError(404, f"no task {task_id}")
    record = orjson.dumps({"status": "cancelled", "finished_at": int(call.app.clock.time() * 1000)})
    outcome = call.app.broker.cancel(
        handle.queue, task_id, record, abort=abort, now_ms=script_ms(call.app.clock)
    )
    if outcome in ("cancelled", "aborting"):
        return handle.queue, outcome
    # refused: running or dead-lettered (the script says), or already finished
    current = facade.job(call.app, task_id, handle.queue)
    status = outcome or (current["status"] if current else "")
    if not status:
        raise HttpError(404, f"no task {task_id} in queue {handle.queue!r}")
    which = (
        "queued, scheduled or running tasks abort" if abort else "queued or scheduled tasks cancel"
    )
    raise HttpError(409, f"task {task_id} is {status}: only {which}")


def cancel(call: RouteCall) -> Response:
    queue, status = _stop(call, abort=False)
    return ok({"id": call.params["id"], "queue": queue, "cancelled": True, "status": status})


def abort(call: RouteCall) -> Response:
    queue, status = _stop(call, abort=True)
    return ok({"id": call.params["id"], "queue": queue, "status": status})


_SELECT = {
    "id": param(
        {"type": "array", "items": ID_PARAM, "maxItems": 100},
        "Ids of dead-lettered tasks (repeat the parameter, at most 100).",
    ),
    "all": param({"type": "boolean", "default": False}, "Act on the oldest `limit` tasks instead."),
    "limit": param(_int(1, 1000, 100), "With all=true: how many, oldest first."),
}


def build_routes() -> list[Route]:
    """Every route, in the order the index and the OpenAPI document list them.

    ``exposes`` says what a read route can reveal (classes of :mod:`taskq_core.http.access`);
    a route that does not say exposes every private class, so a new route is private until
    declared otherwise.
    """
    metrics, health_class, hosts = ("metrics",), ("health",), ("hosts",)
    task_queue = param(QUEUE_PARAM, "Queue of the task (default: search every queue).")
    return [
        Route(method="GET", path="/", name="index", handler=index, exposes=metrics,
              summary="Index of the routes.", response_schema=schemas.INDEX),
        Route(method="GET", path="/openapi.json", name="openapi", handler=openapi,
              exposes=metrics, summary="This API's OpenAPI document.",
              response_schema=schemas.OPENAPI),
        Route(method="GET", path="/health", name="health", handler=health_check,
              exposes=health_class, response_schema=schemas.HEALTH,
              summary="Health with component status; 503 when unhealthy."),
        Route(method="GET", path="/health/live", name="health_live", handler=health_live,
              exposes=health_class, response_schema=schemas.LIVE,
              summary="Liveness: the process answers (never touches the broker)."),
        Route(method="GET", path="/health/ready", name="health_ready", handler=health_ready,
              exposes=health_class, response_schema=schemas.READY,
              summary="Readiness: the broker answers; 503 when it does not."),
        Route(method="GET", path="/status", name="status", handler=_simple(facade.status),
              exposes=metrics, response_schema=schemas.STATUS,
              summary="Health, queues, workers and alerts at a glance."),
        # worker ids are host:pid, and heartbeats carry host, pid and the ids of running tasks
        Route(method="GET", path="/metrics", name="metrics", handler=_simple(facade.metrics),
              exposes=hosts, response_schema=schemas.METRICS,
              summary="Totals, queues and workers of the whole cluster."),
        Route(method="GET", path="/metrics/system", name="metrics_system",
              handler=_simple(facade.system), exposes=("hosts", "config"),
              response_schema=schemas.SYSTEM, summary="This host and process."),
        Route(method="GET", path="/metrics/performance", name="metrics_performance",
              handler=_simple(facade.performance), exposes=metrics,
              response_schema=schemas.PERFORMANCE,
              summary="Per-task run and wait times, and the SLA window."),
        Route(method="GET", path="/metrics/autoscaler", name="metrics_autoscaler",
              handler=_simple(facade.autoscaler), exposes=hosts,
              response_schema=schemas.AUTOSCALER, summary="Decisions the autoscalers published."),
        Route(method="GET", path="/metrics/queues", name="metrics_queues",
              handler=_simple(facade.queues), exposes=metrics, response_schema=schemas.QUEUES,
              summary="Each queue: gauges, counters, wait and run times, per task."),
        Route(method="GET", path="/metrics/workers", name="metrics_workers",
              handler=_simple(facade.workers), exposes=hosts, response_schema=schemas.WORKERS,
              summary="Live workers and their heartbeats."),
        Route(method="GET", path="/metrics/memory", name="metrics_memory",
              handler=_simple(facade.memory), exposes=hosts, response_schema=schemas.MEMORY,
              summary="Worker memory and its trend (leak detection)."),
        Route(method="GET", path="/metrics/summary", name="metrics_summary",
              handler=_simple(facade.summary), exposes=metrics,
              response_schema=schemas.SUMMARY_ROUTE, summary="Cluster totals in one flat object."),
        Route(method="GET", path="/metrics/prometheus", name="metrics_prometheus",
              handler=prometheus_text, exposes=metrics, response_schema=None,
              summary="Prometheus text exposition (format 0.0.4)."),
        Route(method="GET", path="/registry", name="registry", handler=_simple(facade.registry),
              exposes=("config",), response_schema=schemas.REGISTRY,
              summary="Registered tasks and configured queues."),
        # an alert's subject may be a worker (memory rule)
        Route(method="GET", path="/alerts", name="alerts", handler=alerts, exposes=hosts,
              response_schema=schemas.ALERTS, summary="Active alerts and recent alert events.",
              query={"limit": param(_int(1, 1000, 50),
                                    "Events of the history to return, newest first.")}),
        Route(method="GET", path="/sla", name="sla", handler=_simple(facade.sla_report),
              exposes=hosts, response_schema=schemas.SLA,
              summary="SLA rules, thresholds and current violations."),
        Route(method="GET", path="/diagnostics", name="diagnostics",
              handler=diagnostics_report, exposes=("config", "errors", "hosts"),
              response_schema=schemas.DIAGNOSTICS,
              summary="Configuration (redacted), versions, queues, workers, failures, alerts, "
                      "Redis.",
              query={"failures": param(_int(0, 100, 10), "Recent failures listed per queue.")}),
        Route(method="GET", path="/uptime", name="uptime", handler=_simple(facade.uptime),
              exposes=metrics, response_schema=schemas.UPTIME,
              summary="This process's uptime and the oldest worker's."),
        Route(method="GET", path="/jobs/{id}", name="job", handler=job,
              exposes=("results", "errors"), response_schema=schemas.JOB,
              summary="One task: status, attempts, result or error.",
              query={"queue": task_queue}),
        Route(method="GET", path="/workflows/{id}", name="workflow", handler=workflow,
              exposes=("results", "errors"), response_schema=schemas.WORKFLOW,
              summary="One workflow: status, and each step's state, timings, error and "
                      "result."),
        Route(method="GET", path="/failed", name="failed", handler=failed, exposes=("errors",),
              response_schema=schemas.FAILED, summary="Dead-lettered tasks, oldest first.",
              query={"queue": param(QUEUE_PARAM, "Only this queue (default: every queue)."),
                     "offset": param(_int(0, 1_000_000, 0), "Tasks to skip."),
                     "limit": param(_int(1, 500, 50), "Tasks to return.")}),
        # the dashboard: a page and its assets holding no data (its script reads the routes
        # above, under their own rules), what this request may do, and the hour's chart
        Route(method="GET", path="/dashboard", name="dashboard", handler=dashboard.page,
              exposes=("health",), response_schema=None, content_types=("text/html",),
              summary="The dashboard page (HTML; its data comes from the routes above)."),
        Route(method="GET", path="/dashboard/assets/{asset}", name="dashboard_asset",
              handler=dashboard.asset, exposes=("health",), response_schema=None,
              content_types=("text/javascript", "text/css"),
              summary="The dashboard's script and style sheet, cached by version.",
              query={"v": param({"type": "string", "pattern": "^[0-9a-f]{1,64}$"},
                                "Its version (the page links the current one).")}),
        Route(method="GET", path="/dashboard/session", name="dashboard_session",
              handler=dashboard.session, exposes=("health",),
              response_schema=schemas.DASHBOARD_SESSION,
              summary="Whether this request may use the admin routes, and which private "
                      "classes it may read."),
        Route(method="GET", path="/dashboard/history", name="dashboard_history",
              handler=dashboard.throughput, exposes=metrics,
              response_schema=schemas.DASHBOARD_HISTORY,
              summary="Tasks per minute over the last hour (enqueued, succeeded, failed, "
                      "retried, dead)."),
        # admin routes: POST, arguments in a JSON body, always behind auth
        Route(method="POST", path="/failed/{queue}/retry", name="failed_retry",
              handler=dead_retry, admin=True, response_schema=schemas.RETRIED,
              summary="Send dead-lettered tasks back to their queue.", query=_SELECT,
              exactly_one=("id", "all")),
        Route(method="POST", path="/failed/{queue}/purge", name="failed_purge",
              handler=dead_purge, admin=True, response_schema=schemas.PURGED,
              summary="Delete dead-lettered tasks for good.", query=_SELECT,
              exactly_one=("id", "all")),
        Route(method="POST", path="/jobs/{id}/cancel", name="job_cancel", handler=cancel,
              admin=True, response_schema=schemas.CANCELLED,
              summary="Cancel a queued or scheduled task.", query={"queue": task_queue}),
        Route(method="POST", path="/jobs/{id}/abort", name="job_abort", handler=abort,
              admin=True, response_schema=schemas.ABORTED,
              summary="Abort a task: cancel it if it has not started, else ask it to stop "
                      "(recorded as aborted).", query={"queue": task_queue}),
    ]  # fmt: skip
