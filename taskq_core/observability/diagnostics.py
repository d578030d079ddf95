"""Diagnostics: one report to attach to a bug or read during an incident.

Configuration (secrets masked, URL credentials removed), versions, the task registry,
queues, live workers, the most recent dead-lettered tasks of each queue (error type and
message, no traceback), alerts, and facts about the Redis server.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..settings import redact_setting
from . import alerts, facade
from .cluster import collect

if TYPE_CHECKING:
    from ..app import TaskQueue

#: Redis INFO fields worth reporting (others may reveal more than needed)
REDIS_FACTS = (
    "redis_version",
    "redis_mode",
    "os",
    "uptime_in_seconds",
    "connected_clients",
    "blocked_clients",
    "used_memory",
    "used_memory_peak",
    "maxmemory",
    "maxmemory_policy",
    "mem_fragmentation_ratio",
    "role",
    "connected_slaves",
    "aof_enabled",
    "rdb_last_bgsave_status",
    "evicted_keys",
    "expired_keys",
)
_PACKAGES = ("redis", "hiredis", "orjson", "pydantic", "psutil", "prometheus_client")


def redacted_settings(model: BaseModel) -> dict[str, Any]:
    """A settings model as a dict with every secret masked, sections included."""
    out: dict[str, Any] = {}
    fields = type(model).model_fields
    for name, info in fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out[name] = redacted_settings(value)
        else:
            out[name] = redact_setting(name, value, info)
    return out


def versions(app: TaskQueue) -> dict[str, str | None]:
    out: dict[str, str | None] = {
        "taskq": facade.system(app)["taskq_version"],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def redis_facts(app: TaskQueue) -> dict[str, Any]:
    info = app.broker.server_info()
    return {k: info[k] for k in REDIS_FACTS if k in info}


def recent_failures(app: TaskQueue, per_queue: int) -> list[dict[str, Any]]:
    """The newest ``per_queue`` dead-lettered tasks of each queue."""
    out: list[dict[str, Any]] = []
    for info in app.broker.queue_info(app.queues()):
        if info.dead:
            start = max(0, info.dead - per_queue)
            out += [facade.dead_item(d) for d in app.broker.dead_list(info.name, start, per_queue)]
    return sorted(out, key=lambda d: d["dead_at"], reverse=True)


def report(app: TaskQueue, failures: int = 10) -> dict[str, Any]:
    """The whole diagnostics report (``/diagnostics``)."""
    c = collect(app)
    qs = facade.queues(app, c)["queues"]
    return {
        "generated_at": c.at_ms,
        "versions": versions(app),
        "config": redacted_settings(app.settings),
        "registry": facade.registry(app),
        "queues": [{k: v for k, v in q.items() if k != "tasks"} for q in qs],
        "workers": facade.workers(app, c)["workers"],
        "recent_failures": recent_failures(app, failures),
        "alerts": alerts.state(app, history=20),
        "redis": redis_facts(app),
        "middleware": [type(m).__name__ for m in app.middleware],
    }
