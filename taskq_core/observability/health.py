"""Health: component status, overall status and the HTTP status that goes with it.

Components:

- ``broker``: reachable, round-trip time, and for Redis its version, memory, eviction
  policy, ``durability`` (persistence in force, see ``durability.py``) and ``data_loss``
  (a loss of Redis's data that a worker saw in the last hour, else null). Unreachable is
  *unhealthy*; a policy other than ``noeviction`` (Redis may then drop task keys), memory
  above ``monitoring.memory_warn_ratio`` of ``maxmemory``, a round trip slower than
  ``monitoring.rtt_warn_ms``, persistence that loses tasks on a restart (unless
  ``monitoring.durability_warn`` is off) or a recent data loss is *degraded*.
- ``workers``: live workers per queue. *Degraded* when none is alive, when tasks are
  ready in a queue that no live worker serves, or when a worker's fetch loop has a round
  trip outstanding past its bound (``stalled``: the worker is cut off from Redis and its
  watchdog has not freed it yet, see ``fetch_watch.py``).
- ``scheduler``: *healthy* while a scheduler heartbeat is live (with each schedule's next
  run time); *degraded* when the app has schedules (``tq.schedule``) but no scheduler runs;
  ``not_configured`` when there are neither. Never unhealthy: a missing scheduler delays
  periodic tasks but does not stop the queue.
- ``backlog``: each queue's ready tasks and oldest age. *Degraded* past
  ``monitoring.max_backlog`` or ``monitoring.max_oldest_age``.

Overall: unhealthy if a component is, else degraded if one is, else healthy; HTTP 503, 200
and 200. Every broker call goes through a probe client that gives up after
``monitoring.health_timeout`` without retrying, and the check stops at the first failed
call, so it answers in about one timeout when Redis is down or frozen.

Liveness (``/health/live``) never touches the broker: restarting a web process does not fix
Redis. Readiness (``/health/ready``) is the broker's reachability.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from .. import scheduler_store
from ..capabilities import missing, split_queue
from ..fetch_watch import stalled
from ..redact import redact_text
from . import durability
from .cluster import collect

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..brokers.base import Broker

STARTED = time.time()
_RANK = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def probe(app: TaskQueue) -> Broker:
    """The application's broker with the health timeout (cached by the broker)."""
    return app.broker.probe(app.settings.monitoring.health_timeout)


def http_status(status: str) -> int:
    return 503 if status == "unhealthy" else 200


def _worst(statuses: list[str]) -> str:
    ranked = [s for s in statuses if s in _RANK]
    return max(ranked, key=_RANK.__getitem__, default="healthy")


def _error(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}")[:300]


def _broker(app: TaskQueue, b: Broker) -> dict[str, Any]:
    m = app.settings.monitoring
    kind = (
        "memory"
        if app.broker.url.startswith("memory://")
        else "postgres"
        if getattr(app.broker, "transactional", False)
        else "redis"
    )
    # the best of three round trips: one slow reply on a busy host is not a slow broker
    rtt = b.ping()
    rtt = min(rtt, b.ping(), b.ping())
    out: dict[str, Any] = {"status": "healthy", "kind": kind, "rtt_ms": round(rtt * 1000, 3)}
    warnings: list[str] = []
    if rtt * 1000 > m.rtt_warn_ms:
        warnings.append(f"round trip {rtt * 1000:.1f} ms > {m.rtt_warn_ms:g} ms")
    info = b.server_info()
    if kind == "postgres":
        _postgres(app.broker, info, out, warnings)
    elif info:
        policy = str(info.get("maxmemory_policy", "unknown"))
        used = int(info.get("used_memory", 0) or 0)
        limit = int(info.get("maxmemory", 0) or 0)
        out.update(
            version=str(info.get("redis_version", "")),
            used_memory_bytes=used,
            maxmemory_bytes=limit,
            maxmemory_policy=policy,
        )
        if policy != "noeviction":
            warnings.append(
                f"maxmemory-policy is {policy}: Redis may evict task keys (taskq requires "
                "noeviction)"
            )
        if limit and used > m.memory_warn_ratio * limit:
            warnings.append(
                f"memory {used} bytes is over {m.memory_warn_ratio:.0%} of maxmemory {limit}: "
                "at maxmemory enqueues fail (BrokerFull)"
            )
        durable = durability.persistence(b, info)
        if durable:
            out["durability"] = durable
            if durable["warning"] and m.durability_warn:
                warnings.append(durable["warning"])
        marker, _ = durability.read_marker(b)
        loss = durability.recent_loss(marker, int(time.time() * 1000))
        out["data_loss"] = loss
        if loss is not None:
            warnings.append(
                f"Redis lost its data ({loss['cause']}): queued tasks may have been lost"
            )
    out["warnings"] = warnings
    if warnings:
        out["status"] = "degraded"
    return out


def _postgres(
    broker: Broker, info: dict[str, Any], out: dict[str, Any], warnings: list[str]
) -> None:
    """The PostgreSQL broker's facts: the server's version and connections, and this
    process's pool (psycopg_pool's figures)."""
    used, limit = int(info.get("connected_clients", 0)), int(info.get("max_connections", 0))
    out.update(
        version=str(info.get("postgres_version", "")), connections=used, max_connections=limit
    )
    pool: dict[str, int] = getattr(broker, "pool_stats", dict)()
    out["pool"] = pool
    if limit and used > 0.9 * limit:
        warnings.append(
            f"{used} of the server's {limit} connections are in use: new ones will be refused"
        )
    out["autovacuum"] = bool(info.get("autovacuum", True))
    if not out["autovacuum"]:
        warnings.append(
            "the server's autovacuum is off: workers vacuum taskq's tables themselves every "
            "30 s (brokers/postgres/maintenance.py); turn it on"
        )
    if pool.get("requests_waiting", 0) > 0:
        warnings.append(
            f"{pool['requests_waiting']} calls wait for a pooled connection "
            "(broker.max_connections)"
        )


def _not_configured() -> dict[str, Any]:
    return {
        "status": "not_configured",
        "alive": 0,
        "schedules": {},
        "detail": "no schedules and no scheduler running",
    }


def scheduler(app: TaskQueue, b: Broker) -> dict[str, Any]:
    """The ``scheduler`` component: live schedulers and their schedules' next run times."""
    records = scheduler_store.records(b)
    if records:
        runs: dict[str, int | None] = {}
        for r in records:
            for s in r.get("schedules") or []:
                if isinstance(s, dict) and isinstance(s.get("name"), str):
                    at = s.get("next_run_at")
                    known = runs.get(s["name"])
                    # several schedulers: the earliest pending tick is the one that counts
                    runs[s["name"]] = at if known is None else min(known, at or known)
        return {"status": "healthy", "alive": len(records), "schedules": runs, "detail": ""}
    if app.schedules:
        return {
            "status": "degraded",
            "alive": 0,
            "schedules": dict.fromkeys(app.schedules),
            "detail": f"{len(app.schedules)} schedule(s) but no scheduler running "
            "(start one with: taskq scheduler)",
        }
    return _not_configured()


def check(app: TaskQueue) -> dict[str, Any]:
    """The full health report; ``status`` is healthy, degraded or unhealthy."""
    m = app.settings.monitoring
    start = time.perf_counter()
    b = probe(app)
    unknown = {"status": "unknown", "detail": "not checked: the broker did not answer"}
    components: dict[str, Any] = {
        "broker": {"status": "unhealthy"},
        "workers": dict(unknown),
        "scheduler": dict(unknown) if app.schedules else _not_configured(),
        "backlog": dict(unknown),
    }
    try:
        components["broker"] = _broker(app, b)
        cluster = collect(app, b)
    except Exception as exc:
        components["broker"].update(status="unhealthy", error=_error(exc))
    else:
        per_queue = cluster.workers_per_queue()
        ready = {i.name: i.ready for i in cluster.queues}
        waiting = sorted(q for q, n in per_queue.items() if n == 0 and ready.get(q, 0) > 0)
        # a routed queue no live worker serves: no worker has all its capabilities
        unroutable = {q: missing(q, cluster.workers) for q in waiting if split_queue(q)[1]}
        orphaned = [q for q in waiting if q not in unroutable]
        w_status = "healthy"
        detail = ""
        stuck = sorted(str(w["id"]) for w in cluster.workers if stalled(w, cluster.at_ms))
        if not cluster.workers:
            w_status, detail = "degraded", "no live worker"
        elif orphaned or unroutable:
            parts = ["tasks ready but no worker: " + ", ".join(orphaned)] if orphaned else []
            parts += [
                f"tasks ready in {q} but no live worker has the capabilities {', '.join(lack)}"
                for q, lack in unroutable.items()
            ]
            w_status, detail = "degraded", "; ".join(parts)
        elif stuck:
            w_status, detail = "degraded", "fetch loop stalled: " + ", ".join(stuck)
        components["workers"] = {
            "status": w_status,
            "alive": len(cluster.workers),
            "per_queue": per_queue,
            "unroutable": unroutable,
            "stalled": stuck,
            "detail": detail,
        }
        queues: dict[str, Any] = {}
        late: list[str] = []
        for info in cluster.queues:
            age = cluster.oldest_age(info)
            queues[info.name] = {"ready": info.ready, "oldest_age_seconds": age}
            if (m.max_oldest_age is not None and age is not None and age > m.max_oldest_age) or (
                m.max_backlog is not None and info.ready > m.max_backlog
            ):
                late.append(info.name)
        components["backlog"] = {
            "status": "degraded" if late else "healthy",
            "queues": queues,
            "detail": ("over threshold: " + ", ".join(late)) if late else "",
        }
        try:
            components["scheduler"] = scheduler(app, b)
        except Exception as exc:
            components["scheduler"].update(error=_error(exc))
    status = _worst([c["status"] for c in components.values()])
    return {
        "status": status,
        "checked_at": int(time.time() * 1000),
        "duration_ms": round((time.perf_counter() - start) * 1000, 3),
        "components": components,
    }


def live() -> dict[str, Any]:
    """Liveness: this process answers."""
    return {"status": "alive", "pid": os.getpid(), "uptime_seconds": uptime()}


def ready(app: TaskQueue) -> dict[str, Any]:
    """Readiness: the broker answers within the health timeout."""
    try:
        rtt = probe(app).ping()
    except Exception as exc:
        return {"status": "not_ready", "rtt_ms": None, "error": _error(exc)}
    return {"status": "ready", "rtt_ms": round(rtt * 1000, 3), "error": None}


def uptime() -> float:
    """Seconds since taskq was imported in this process."""
    return round(time.time() - STARTED, 3)
