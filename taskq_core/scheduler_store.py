"""Scheduler heartbeats: which schedulers are alive, their schedules and next run times.

Kept apart from the workers' heartbeats (``broker.put_heartbeat``) so that a scheduler never
counts as a worker. Redis: ZSET ``{prefix}:schedulers`` (member = scheduler id, score =
expiry in ms) and STRING ``{prefix}:scheduler:{id}`` with a TTL, the same layout as the
workers'; the in-memory broker keeps the records in this process. The broker interface has
no generic "set with TTL" (and its modules are owned elsewhere), so this module sends its
own plans through ``RedisBroker.run``.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

import orjson

from .brokers.base import Broker

# records of in-memory brokers: broker -> {scheduler id: (record, expiry on time.monotonic)}
_MEMORY: weakref.WeakKeyDictionary[Any, dict[str, tuple[bytes, float]]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def _redis(broker: Broker) -> Any | None:
    from .brokers.redis import RedisBroker

    return broker if isinstance(broker, RedisBroker) else None


def _keys(broker: Any, scheduler_id: str) -> tuple[str, str]:
    prefix = broker.keys.prefix
    return f"{prefix}:schedulers", f"{prefix}:scheduler:{scheduler_id}"


def _put_plan(broker: Any, scheduler_id: str, record: bytes, ttl_ms: int) -> Any:
    from .brokers.redis_plans import Plan

    index, key = _keys(broker, scheduler_id)
    # real time, not the app's clock: Redis expires the record on its own clock
    now_ms = int(time.time() * 1000)
    commands: list[Any] = [
        ("ZADD", index, now_ms + ttl_ms, scheduler_id),
        ("SET", key, record, "PX", ttl_ms),
        ("ZREMRANGEBYSCORE", index, "-inf", now_ms),
    ]
    return Plan(commands, lambda r: None)


def _put_memory(broker: Broker, scheduler_id: str, record: bytes, ttl_ms: int) -> None:
    with _LOCK:
        _MEMORY.setdefault(broker, {})[scheduler_id] = (record, time.monotonic() + ttl_ms / 1000)


def put(broker: Broker, scheduler_id: str, record: dict[str, Any], ttl_ms: int) -> None:
    """Publish a scheduler's record; it disappears ``ttl_ms`` after the last one."""
    data = orjson.dumps(record)
    rb = _redis(broker)
    if rb is None:
        _put_memory(broker, scheduler_id, data, ttl_ms)
    else:
        rb.run(_put_plan(rb, scheduler_id, data, ttl_ms))


async def put_async(broker: Broker, scheduler_id: str, record: dict[str, Any], ttl_ms: int) -> None:
    """The async form of :func:`put`."""
    data = orjson.dumps(record)
    rb = _redis(broker)
    if rb is None:
        _put_memory(broker, scheduler_id, data, ttl_ms)
    else:
        await rb.run_async(_put_plan(rb, scheduler_id, data, ttl_ms))


def drop(broker: Broker, scheduler_id: str) -> None:
    """Remove a stopping scheduler's record at once."""
    rb = _redis(broker)
    if rb is None:
        with _LOCK:
            _MEMORY.get(broker, {}).pop(scheduler_id, None)
        return
    from .brokers.redis_plans import Plan

    index, key = _keys(rb, scheduler_id)
    rb.run(Plan([("ZREM", index, scheduler_id), ("DEL", key)], lambda r: None))


def records(broker: Broker) -> list[dict[str, Any]]:
    """The records of the live schedulers, sorted by id (unreadable ones skipped)."""
    rb = _redis(broker)
    raw: list[bytes] = []
    if rb is None:
        now = time.monotonic()
        with _LOCK:
            held = _MEMORY.get(broker, {})
            for sid in [s for s, (_, exp) in held.items() if exp <= now]:
                del held[sid]
            raw = [data for data, _ in held.values()]
    else:
        from .brokers.redis_plans import Plan

        index, _ = _keys(rb, "")
        now_ms = int(time.time() * 1000)
        ids = rb.run(Plan([("ZRANGEBYSCORE", index, now_ms, "+inf")], lambda r: list(r[0])))
        if ids:
            names = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
            # GET per key rather than MGET: the keys need not share a cluster slot
            got = rb.run(Plan([("GET", _keys(rb, n)[1]) for n in names], list))
            raw = [g for g in got if g is not None]
    out: list[dict[str, Any]] = []
    for data in raw:
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            out.append(record)
    return sorted(out, key=lambda r: str(r["id"]))
