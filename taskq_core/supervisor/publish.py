"""The autoscalers' published decisions (contract 2).

Each supervisor writes, after every reading, one JSON record in the HASH
``{prefix}:autoscaler`` (field = its id)::

    {"supervisor", "host", "at": ms, "processes": int, "min": int, "max": int,
     "inputs": {...signals...}, "decision": "up" | "down" | "hold", "target": int,
     "reason": str}

The façade's ``/metrics/autoscaler`` route and the Prometheus exposition read them (so an
external autoscaler — Kubernetes HPA, KEDA — can act on the same signal), and the
supervisors read each other's to share ``cluster_max_processes``. Readers ignore records
older than 60 s; records older than an hour are deleted by the next reader. Works on both
brokers (the in-memory broker keeps the hash in-process).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ..app import TaskQueue

#: records older than this are ignored by readers
MAX_AGE_MS = 60_000
#: records older than this (a supervisor that died without removing its record) are deleted
FORGET_MS = 3_600_000


def write_autoscaler(app: TaskQueue, record: dict[str, Any]) -> None:
    """Store ``record`` as its supervisor's latest (``record["supervisor"]`` names it)."""
    sid = record.get("supervisor")
    if not isinstance(sid, str) or not sid:
        raise ValueError("an autoscaler record needs a non-empty 'supervisor' id")
    app.broker.put_autoscaler(sid, orjson.dumps(record))


def drop_autoscaler(app: TaskQueue, supervisor_id: str) -> None:
    """Remove a supervisor's record (it stops)."""
    app.broker.drop_autoscaler([supervisor_id])


def read_autoscaler(
    app: TaskQueue, *, max_age_ms: int = MAX_AGE_MS, now_ms: int | None = None
) -> list[dict[str, Any]]:
    """The records written within ``max_age_ms``, sorted by supervisor id. Unreadable
    records are skipped; records older than an hour are deleted."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    out: list[dict[str, Any]] = []
    forget: list[str] = []
    for sid, data in app.broker.autoscaler_records().items():
        record: Any = None
        with contextlib.suppress(orjson.JSONDecodeError):
            record = orjson.loads(data)
        at = record.get("at") if isinstance(record, dict) else None
        if not isinstance(at, int):
            continue
        if now - at > FORGET_MS:
            forget.append(sid)
        elif now - at <= max_age_ms:
            out.append(record)
    if forget:
        app.broker.drop_autoscaler(forget)
    return sorted(out, key=lambda r: str(r.get("supervisor")))


def make_record(
    *,
    supervisor: str,
    host: str,
    at_ms: int,
    processes: int,
    low: int,
    high: int,
    inputs: dict[str, Any],
    decision: str,
    target: int,
    reason: str,
) -> dict[str, Any]:
    """A record in the shape of contract 2."""
    return {
        "supervisor": supervisor,
        "host": host,
        "at": at_ms,
        "processes": processes,
        "min": low,
        "max": high,
        "inputs": inputs,
        "decision": decision,
        "target": target,
        "reason": reason,
    }
