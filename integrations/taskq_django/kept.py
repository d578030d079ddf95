"""What ``django.tasks`` results need beyond what taskq keeps: the call's arguments (taskq
drops the message once the task is done) and each attempt (its worker, its error).

One Redis hash per task, ``<key_prefix>:django:<task id>``, expiring with the task's result
(``result_ttl``); a broker without a Redis client (``memory://``) keeps them in the process.
Everything is JSON: nothing read back is imported or unpickled.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from django.tasks.base import TaskError

from taskq_core import TaskQueue

#: memory:// brokers: task id -> fields (one process, so one dict)
_local: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


class Kept:
    """The stored extras of one task of ``tq``."""

    def __init__(self, tq: TaskQueue, task_id: str) -> None:
        self.client: Any = getattr(tq.broker, "client", None)
        self.key = f"{tq.settings.key_prefix}:django:{task_id}"
        self.ttl_ms = int(tq.settings.result_ttl * 1000)

    def call(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Record the arguments of the call (at enqueue)."""
        self._set("call", {"args": list(args), "kwargs": dict(kwargs)})

    def attempt(self, worker: str, at: datetime) -> None:
        """Record that ``worker`` starts an attempt now."""
        self._append("workers", worker)
        self._set("last_attempted_at", int(at.timestamp() * 1000))

    def failed(self, error: TaskError) -> None:
        """Record the error of the attempt that just failed."""
        entry = {"exception_class_path": error.exception_class_path, "traceback": error.traceback}
        self._append("errors", entry)

    def read(self) -> dict[str, Any]:
        """``call``, ``workers``, ``errors``, ``last_attempted_at`` (those recorded)."""
        if self.client is None:
            with _lock:
                return dict(_local.get(self.key, {}))
        raw: dict[bytes, bytes] = self.client.hgetall(self.key)
        return {k.decode(): orjson.loads(v) for k, v in raw.items()}

    def _set(self, field: str, value: Any) -> None:
        if self.client is None:
            with _lock:
                _local.setdefault(self.key, {})[field] = value
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.key, field, orjson.dumps(value))
        pipe.pexpire(self.key, self.ttl_ms)
        pipe.execute()

    def _append(self, field: str, value: Any) -> None:
        if self.client is None:
            with _lock:
                _local.setdefault(self.key, {}).setdefault(field, []).append(value)
            return
        # read-modify-write is safe: one worker runs an attempt of a task at a time
        current = self.read().get(field) or []
        self._set(field, [*current, value])


def kept(tq: TaskQueue, task_id: str) -> Kept:
    """The stored extras of ``task_id``."""
    return Kept(tq, task_id)


__all__ = ["Kept", "kept"]
