"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of every JSON body the routes return.

The route table attaches one to each route; the OpenAPI document is built from them, and
the route tests validate every response against its route's schema.
"""

from __future__ import annotations

from typing import Any

from ..observability.metrics import QUEUE_COUNTERS, TASK_COUNTERS

Schema = dict[str, Any]

INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
STR: Schema = {"type": "string"}
BOOL: Schema = {"type": "boolean"}
MS: Schema = {"type": "integer", "description": "Time in epoch milliseconds."}
ANY_OBJECT: Schema = {"type": "object"}


def null(s: Schema) -> Schema:
    """``s`` or null."""
    return {"anyOf": [s, {"type": "null"}]}


def arr(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def obj(props: dict[str, Schema], optional: tuple[str, ...] = (), **extra: Any) -> Schema:
    """An object with ``props``, every one required except ``optional``."""
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
        **extra,
    }


def mapping(values: Schema) -> Schema:
    return {"type": "object", "additionalProperties": values}


ERROR = obj(
    {"status": INT, "error": STR, "message": STR},
    description="Every error: the HTTP status, a short code and a message; never a traceback.",
)
SUMMARY = obj(
    {
        "count": INT,
        "sum": NUM,
        "avg": null(NUM),
        "p50": null(NUM),
        "p95": null(NUM),
        "p99": null(NUM),
    },
    description="Observations (seconds): count, sum, mean and estimated percentiles.",
)
TASK_COUNTS = obj(dict.fromkeys(TASK_COUNTERS.values(), INT))
QUEUE_COUNTS = obj(dict.fromkeys([*TASK_COUNTERS.values(), *QUEUE_COUNTERS.values()], INT))
QUEUE = obj(
    {
        "name": STR,
        "depth": INT,
        "delayed": INT,
        "in_flight": INT,
        "dead_letter": INT,
        "waiting": INT,
        "oldest_age_seconds": null(NUM),
        "workers": INT,
        "counters": QUEUE_COUNTS,
        "error_rate": null(NUM),
        "wait": SUMMARY,
        "runtime": SUMMARY,
        "tasks": arr(
            obj(
                {
                    "task": STR,
                    "counters": TASK_COUNTS,
                    "error_rate": null(NUM),
                    "wait": SUMMARY,
                    "runtime": SUMMARY,
                }
            )
        ),
    }
)
TREND = obj(
    {
        "samples": INT,
        "window_seconds": NUM,
        "first_rss_bytes": null(INT),
        "peak_rss_bytes": null(INT),
        "growth_bytes": INT,
        "slope_bytes_per_hour": null(NUM),
        "slope_bytes_per_task": null(NUM),
        "r2": null(NUM),
        "leaking": BOOL,
    }
)
WORKER = obj(
    {
        "id": STR,
        "host": STR,
        "pid": INT,
        "queues": arr(STR),
        # what the worker declared (taskq_core/capabilities.py); absent in older records
        "capabilities": arr(STR),
        "concurrency": INT,
        "busy": INT,
        "current": arr(obj({"id": STR, "queue": STR, "task": STR, "running_for": NUM})),
        "done": INT,
        "failed": INT,
        "rss_bytes": INT,
        "started_at": MS,
        "seen_at": MS,
        "supervisor": null(STR),
        "memory": TREND,
        # the fetch loop's watchdog (fetch_watch.py); absent in older workers' records
        "fetch": obj(
            {
                "last_progress_ms": MS,
                "pending_since_ms": null(MS),
                "bound_ms": INT,
                "stalls": INT,
            }
        ),
    },
    optional=("memory", "fetch", "capabilities"),
)
WORKERS = obj(
    {
        "generated_at": MS,
        "alive": INT,
        "busy": INT,
        "concurrency": INT,
        "per_queue": mapping(INT),
        "workers": arr(WORKER),
    }
)
QUEUES = obj({"generated_at": MS, "queues": arr(QUEUE)})
#: one label set of a custom metric (observability/custom_report.py): a counter's total or
#: a gauge's value (with when it was set), or a histogram's figures and cumulative buckets
CUSTOM_SERIES: Schema = {
    "anyOf": [
        obj(
            {"labels": mapping(STR), "value": NUM, "updated_at": null(MS)},
            optional=("updated_at",),
        ),
        obj(
            {
                "labels": mapping(STR),
                **SUMMARY["properties"],
                "buckets": arr(obj({"le": STR, "count": INT})),
            }
        ),
    ]
}
CUSTOM_METRIC = obj(
    {
        "name": STR,
        "kind": {"enum": ["counter", "gauge", "histogram"]},
        "help": STR,
        "labels": arr(STR),
        "buckets": arr(NUM),
        "series": arr(CUSTOM_SERIES),
    },
    optional=("buckets",),
    description="An application's own metric (docs/monitoring.md, Custom metrics).",
)
METRICS = obj(
    {
        "generated_at": MS,
        "totals": QUEUE_COUNTS,
        "queues": arr(QUEUE),
        "workers": WORKERS,
        "custom": arr(CUSTOM_METRIC),
    }
)
SUMMARY_ROUTE = obj(
    {
        "generated_at": MS,
        **dict.fromkeys(TASK_COUNTERS.values(), INT),
        "error_rate": null(NUM),
        "depth": INT,
        "delayed": INT,
        "in_flight": INT,
        "dead_letter": INT,
        "queues": INT,
        "workers": INT,
        "busy": INT,
        "concurrency": INT,
        "utilisation": null(NUM),
        "alerts_active": INT,
    }
)
WINDOW = obj(
    {
        "seconds": null(NUM),
        "queues": arr(
            obj(
                {
                    "queue": STR,
                    "executions": INT,
                    "throughput_per_second": null(NUM),
                    "error_rate": null(NUM),
                    "wait_p95": null(NUM),
                }
            )
        ),
        "tasks": arr(obj({"task": STR, "executions": INT, "runtime_p95": null(NUM)})),
    }
)
PERFORMANCE = obj(
    {
        "generated_at": MS,
        "tasks": arr(
            obj(
                {
                    "task": STR,
                    "queue": STR,
                    "executions": INT,
                    "counters": TASK_COUNTS,
                    "error_rate": null(NUM),
                    "runtime": SUMMARY,
                    "wait": SUMMARY,
                }
            )
        ),
        "window": WINDOW,
    }
)
MEMORY = obj(
    {
        "generated_at": MS,
        "process": obj({"pid": INT, "rss_bytes": INT}),
        "workers": arr(obj({"id": STR, "rss_bytes": null(INT), "trend": ANY_OBJECT})),
        "leaking": arr(STR),
        "total_worker_rss_bytes": INT,
    }
)
SYSTEM = obj(
    {
        "host": STR,
        "pid": INT,
        "taskq_version": STR,
        "python": STR,
        "platform": STR,
        "cpu_count": null(INT),
        "load_average": null(arr(NUM)),
        "memory_total_bytes": INT,
        "memory_available_bytes": INT,
        "process": obj({"rss_bytes": INT, "threads": INT, "uptime_seconds": NUM}),
        "broker": obj({"url": STR, "prefix": STR}),
    }
)
AUTOSCALER = obj(
    {
        "supervisors": arr(
            obj(
                {
                    "supervisor": STR,
                    "host": STR,
                    "at": MS,
                    "processes": INT,
                    "min": INT,
                    "max": INT,
                    "inputs": ANY_OBJECT,
                    "decision": {"enum": ["up", "down", "hold"]},
                    "target": INT,
                    "reason": STR,
                }
            )
        )
    }
)
REGISTRY = obj(
    {
        "tasks": arr(
            obj(
                {
                    "name": STR,
                    "queue": STR,
                    "requires": arr(STR),
                    "is_async": BOOL,
                    "timeout": null(NUM),
                    "max_retries": INT,
                    "retry_backoff": NUM,
                    "retry_backoff_max": NUM,
                    "retry_jitter": NUM,
                }
            )
        ),
        "queues": arr(STR),
    }
)
ALERT = obj(
    {
        "key": STR,
        "rule": STR,
        "severity": {"enum": ["warning", "critical"]},
        "subject": mapping(STR),
        "message": STR,
        "value": NUM,
        "threshold": NUM,
        "unit": STR,
        "first_seen": MS,
        "last_seen": MS,
    }
)
EVENT = {
    **ALERT,
    "properties": {**ALERT["properties"], "event": {"enum": ["fired", "cleared"]}, "at": MS},
    "required": [*ALERT["required"], "event", "at"],
}
ALERTS = obj({"active": arr(ALERT), "history": arr(EVENT)})
SLA = obj(
    {
        "window_seconds": NUM,
        "rules": arr(
            obj(
                {
                    "rule": STR,
                    "description": STR,
                    "unit": STR,
                    "severity": STR,
                    "per": {"enum": ["queue", "task", "worker"]},
                    "threshold": null(NUM),
                    "enabled": BOOL,
                    "status": {"enum": ["ok", "violated", "disabled"]},
                    "violations": arr(ALERT),
                }
            )
        ),
    }
)
_STATUS = {"enum": ["healthy", "degraded", "unhealthy"]}
_COMPONENT = obj(
    {"status": {"enum": ["healthy", "degraded", "unhealthy", "unknown", "not_configured"]}}
)
_SCHEDULER = obj(
    {
        "status": {"enum": ["healthy", "degraded", "unknown", "not_configured"]},
        # schedule name -> next run time (ms); null when no scheduler is running
        "schedules": mapping(null(MS)),
        "alive": INT,
        "detail": STR,
    },
    optional=("schedules", "alive", "detail"),
)
HEALTH = obj(
    {
        "status": _STATUS,
        "checked_at": MS,
        "duration_ms": NUM,
        "components": obj(
            {
                "broker": _COMPONENT,
                "workers": _COMPONENT,
                "scheduler": _SCHEDULER,
                "backlog": _COMPONENT,
            }
        ),
    }
)
LIVE = obj({"status": {"const": "alive"}, "pid": INT, "uptime_seconds": NUM})
READY = obj({"status": {"enum": ["ready", "not_ready"]}, "rtt_ms": null(NUM), "error": null(STR)})
STATUS = obj(
    {
        "status": _STATUS,
        "version": STR,
        "uptime_seconds": NUM,
        "components": mapping(STR),
        "queues": mapping(obj({"depth": INT, "in_flight": INT, "dead_letter": INT})),
        "workers": INT,
        "alerts_active": null(INT),
    }
)
UPTIME = obj(
    {
        "started_at": MS,
        "uptime_seconds": NUM,
        "workers": INT,
        "oldest_worker_started_at": null(MS),
        "oldest_worker_uptime_seconds": null(NUM),
    }
)
_ERR = obj({"type": STR, "message": STR})
JOB = obj(
    {
        "id": STR,
        "queue": STR,
        "status": STR,
        "task": null(STR),
        "deliveries": INT,
        "attempts": INT,
        "enqueued_at": null(MS),
        "finished_at": null(MS),
        "result": {},
        "error": _ERR,
        # a running task's latest report (current_task().progress), and an abort request
        "progress": obj({"fraction": NUM, "text": null(STR), "at": MS}),
        "abort_requested_at": MS,
        # the call, for the dashboard's look-up (the route is private: results, errors)
        "args": arr({}),
        "kwargs": ANY_OBJECT,
        "started_at": MS,
    },
    optional=("result", "error", "progress", "abort_requested_at", "args", "kwargs", "started_at"),
)
_STEP = obj(
    {
        "index": INT,
        "task": null(STR),
        "kind": {"enum": ["task", "predicate", "errback"]},
        "queue": null(STR),
        "status": STR,
        "after": arr(INT),
        "task_id": STR,
        "released_at": null(MS),
        "finished_at": null(MS),
        "result": {},
        "error": {},
    },
    optional=("result", "error"),
)
#: GET /workflows/{id} (taskq_core/workflow/handle.py, describe)
WORKFLOW = obj(
    {
        "id": STR,
        "status": STR,
        "policy": {"enum": ["stop", "continue"]},
        "created_at": null(MS),
        "finished_at": null(MS),
        "failed_step": null(INT),
        "counts": mapping(INT),
        "steps": arr(_STEP),
        "result": {},
    },
    optional=("result",),
)
DEAD = obj(
    {
        "id": STR,
        "queue": STR,
        "task": null(STR),
        "state": STR,
        "dead_at": MS,
        "attempts": null(INT),
        "error": _ERR,
    }
)
FAILED = obj({"total": INT, "offset": INT, "limit": INT, "items": arr(DEAD)})
DIAGNOSTICS = obj(
    {
        "generated_at": MS,
        "versions": mapping(null(STR)),
        "config": ANY_OBJECT,
        "registry": REGISTRY,
        "queues": arr(ANY_OBJECT),
        "workers": arr(WORKER),
        "recent_failures": arr(DEAD),
        "alerts": ALERTS,
        "redis": ANY_OBJECT,
        "middleware": arr(STR),
    }
)
RETRIED = obj({"queue": STR, "requested": INT, "retried": INT})
PURGED = obj({"queue": STR, "requested": INT, "purged": INT})
CANCELLED = obj({"id": STR, "queue": STR, "cancelled": BOOL, "status": STR})
ABORTED = obj({"id": STR, "queue": STR, "status": {"enum": ["cancelled", "aborting"]}})
INDEX = obj(
    {
        "name": STR,
        "version": STR,
        "openapi": STR,
        "routes": arr(
            obj({"method": STR, "path": STR, "summary": STR, "admin": BOOL, "auth": BOOL})
        ),
    }
)
OPENAPI = obj({"openapi": STR, "info": ANY_OBJECT, "paths": ANY_OBJECT})


_CLASSES = ("health", "metrics", "results", "errors", "hosts", "config")
DASHBOARD_SESSION = obj(
    {
        "admin": BOOL,
        "read": obj(dict.fromkeys(_CLASSES, BOOL)),
        "prefix": STR,
    }
)  # fmt: skip
DASHBOARD_HISTORY = obj(
    {
        "span_seconds": INT,
        "step_seconds": INT,
        "points": arr(
            obj(
                {
                    "at": MS,
                    "seconds": NUM,
                    **dict.fromkeys(("enqueued", "succeeded", "failed", "retried", "dead"), INT),
                }
            )
        ),
    }
)
