"""Worker heartbeats (contract 1): who is alive, what it serves, what it is doing.

Each worker publishes a JSON record when it starts and on every tick (``renew_interval``),
with a TTL of three intervals, so a killed or frozen worker disappears on its own; a worker
that stops cleanly deletes its record. Storage: ZSET ``{prefix}:workers`` (member = worker
id, score = expiry in ms) and STRING ``{prefix}:worker:{id}``; the in-memory broker keeps the
same records in-process. Record::

    {"id", "host", "pid", "queues": [...], "concurrency", "busy",
     "current": [{"id", "queue", "task", "running_for"}],
     "done": int, "failed": int, "rss_bytes": int, "started_at": ms, "seen_at": ms,
     "supervisor": str | null, "memory": {...trend, see memory.py...},
     "fetch": {"last_progress_ms", "pending_since_ms": ms | null, "bound_ms", "stalls"}}

``done`` counts executions that reached an outcome, ``failed`` those that raised (retried,
failed or dead-lettered). ``supervisor`` is the ``TASKQ_SUPERVISOR_ID`` environment variable
of the worker process, set by the supervisor that started it. ``fetch`` is the fetch loop's
watchdog state (``fetch_watch.py``): a round trip outstanding past ``bound_ms`` is a stalled
fetch loop, which health reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import orjson
import psutil

from ..middleware import Middleware
from ..redact import redact_text
from .memory import LeakRule, MemoryTrend

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..settings import MonitoringSettings
    from ..worker import Worker

log = logging.getLogger("taskq.heartbeat")

#: environment variable through which a supervisor names itself to its workers
SUPERVISOR_ENV = "TASKQ_SUPERVISOR_ID"


def leak_rule(monitoring: MonitoringSettings) -> LeakRule:
    return LeakRule(
        monitoring.leak_min_samples, monitoring.leak_mb_per_hour, monitoring.leak_min_growth_mb
    )


class HeartbeatMiddleware(Middleware):
    """Publishes each worker's record (registered by default on every TaskQueue).

    Writes from the loop are sent as background asyncio tasks, so a slow broker never
    stalls task execution; a write still in flight when the next tick comes is not doubled.
    """

    def __init__(self, monitoring: MonitoringSettings) -> None:
        self.monitoring = monitoring
        self._process = psutil.Process()
        self._trends: dict[str, MemoryTrend] = {}
        self._writes: dict[str, asyncio.Task[None]] = {}

    def record(self, worker: Worker) -> dict[str, Any]:
        """The worker's heartbeat record, sampling its RSS now."""
        c = worker.counts
        done = c.succeeded + c.retried + c.failed + c.dead
        rss = int(self._process.memory_info().rss)
        trend = self._trends.get(worker.id)
        if trend is None:
            trend = self._trends[worker.id] = MemoryTrend(
                self.monitoring.memory_window, leak_rule(self.monitoring)
            )
        now = time.time()
        trend.add(now, rss, done)
        return {
            "id": worker.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": list(worker.queues),
            "capabilities": sorted(worker.capabilities),
            "concurrency": worker.concurrency,
            "busy": worker.busy,
            "current": worker.current(),
            "done": done,
            "failed": c.retried + c.failed + c.dead,
            "rss_bytes": rss,
            "started_at": int(worker.started_at * 1000),
            "seen_at": int(now * 1000),
            "supervisor": os.environ.get(SUPERVISOR_ENV) or None,
            "memory": trend.trend(),
            "fetch": worker.fetch_watch.record(),
        }

    def _ttl_ms(self, worker: Worker) -> int:
        return int(worker.renew_every * 3000)

    def _publish(self, worker: Worker) -> None:
        previous = self._writes.get(worker.id)
        if previous is not None and not previous.done():
            return
        data = orjson.dumps(self.record(worker))
        coro = worker.app.broker.put_heartbeat_async(
            worker.id, data, self._ttl_ms(worker), int(time.time() * 1000)
        )
        task = asyncio.get_running_loop().create_task(coro)
        task.add_done_callback(_log_failure)
        self._writes[worker.id] = task

    def worker_started(self, worker: Worker) -> None:
        self._publish(worker)

    def tick(self, worker: Worker) -> None:
        self._publish(worker)

    def worker_stopping(self, worker: Worker) -> None:
        task = self._writes.pop(worker.id, None)
        if task is not None and not task.done():
            task.cancel()
        self._trends.pop(worker.id, None)
        worker.app.broker.drop_heartbeat(worker.id)


def _log_failure(task: asyncio.Task[None]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.warning("could not publish the worker heartbeat: %s", redact_text(str(exc)))


def read_workers(app: TaskQueue) -> list[dict[str, Any]]:
    """The records of the live workers of the whole cluster, sorted by id."""
    return decode_records(app.broker.heartbeats())


def decode_records(raw: list[bytes]) -> list[dict[str, Any]]:
    """Heartbeat records from their JSON; an unreadable one is skipped."""
    out: list[dict[str, Any]] = []
    for data in raw:
        with contextlib.suppress(orjson.JSONDecodeError):
            record = orjson.loads(data)
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                out.append(record)
    return sorted(out, key=lambda r: str(r["id"]))
