"""Handles: what ``enqueue`` returns, to follow a task to its result."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .errors import ResultTimeout, TaskFailed, TaskNotFound
from .message import stored_dict

if TYPE_CHECKING:
    from .app import TaskQueue
    from .brokers.base import TaskState

#: every status a task can have; ``unknown`` when the broker has no trace of it
#: (flow control, docs/flow-control.md: ``throttled``, held back by a rate limit until it
#: allows; ``waiting``, for a concurrency slot; ``expired``, not started in time, never run;
#: ``aborted``, stopped on request)
STATUSES = (
    "queued",
    "scheduled",
    "throttled",
    "waiting",
    "running",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
    "expired",
    "aborted",
    "skipped",
)
#: ``skipped``: a workflow step whose condition did not hold (taskq_core/workflow)
FINAL = frozenset({"succeeded", "failed", "dead", "cancelled", "expired", "aborted", "skipped"})


def describe(state: TaskState | None) -> dict[str, Any] | None:
    """A plain, JSON-safe description of a task (the CLI and HTTP routes show this)."""
    if state is None:
        return None
    record: dict[str, Any] = orjson.loads(state.record) if state.record else {}
    message = stored_dict(state.message, state.id, state.queue)
    status = state.state or record.get("status", "unknown")
    if state.state in ("failed", "dead") and record.get("status") in ("failed", "dead"):
        status = record["status"]
    out: dict[str, Any] = {
        "id": state.id,
        "queue": state.queue,
        "status": status,
        "task": message.get("task", record.get("task")),
        "deliveries": state.deliveries,
        "attempts": record.get("attempts", message.get("attempt", 0)),
        "enqueued_at": message.get("enqueued_at", record.get("enqueued_at")),
        "finished_at": record.get("finished_at"),
    }
    if "result" in record:
        out["result"] = record["result"]
    progress = _progress(state.progress)
    if progress is not None:
        out["progress"] = progress
    if state.abort_requested_ms is not None:
        out["abort_requested_at"] = state.abort_requested_ms
    if "error" in record:
        out["error"] = record["error"]
    return out


class TaskHandle:
    """A task in the broker. Cheap to create: it holds only the id and queue."""

    __slots__ = ("app", "existing", "id", "queue")

    def __init__(self, app: TaskQueue, task_id: str, queue: str, existing: bool = False) -> None:
        self.app = app
        self.id = task_id
        self.queue = queue
        #: True when the enqueue added nothing and this is the task that was there: a
        #: unique task queued or running, an idempotency key's earlier task, a re-sent id
        self.existing = existing

    def __repr__(self) -> str:
        extra = ", existing=True" if self.existing else ""
        return f"TaskHandle(id={self.id!r}, queue={self.queue!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaskHandle) and (other.id, other.queue) == (self.id, self.queue)

    def __hash__(self) -> int:
        return hash((self.id, self.queue))

    # -- blocking

    def info(self) -> dict[str, Any]:
        """Status, attempts, result or error; raises :class:`TaskNotFound`."""
        found = describe(self.app.broker.get(self.queue, self.id))
        if found is None:
            raise TaskNotFound(f"no task {self.id} in queue {self.queue!r} (or its result expired)")
        return found

    def status(self) -> str:
        found = describe(self.app.broker.get(self.queue, self.id))
        return "unknown" if found is None else str(found["status"])

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the task to finish (without polling) and return its result.

        Raises :class:`TaskFailed` if it failed, was dead-lettered or cancelled, and
        :class:`ResultTimeout` if it has not finished within ``timeout`` seconds.
        """

        def check() -> dict[str, Any] | None:
            d = describe(self.app.broker.get(self.queue, self.id))
            return d if d is not None and d["status"] in FINAL else None

        done = self.app.broker.wait_for(self.queue, self.id, _forever(timeout), check)
        return _outcome(self.id, done, timeout)

    def cancel(self) -> bool:
        """Cancel the task if it is still queued or scheduled; True if it was."""
        return self.app.broker.cancel(self.queue, self.id, _cancel_record(self.app)) == "cancelled"

    def abort(self) -> str:
        """Stop the task: one not started yet is cancelled (``"cancelled"``); a running one
        is asked to stop (``"aborting"``: its worker learns of it at its next lease
        renewal; an async task is cancelled at its next await, a sync one sees
        ``current_task().aborted``; under the supervisor it is killed after
        ``worker.abort_grace``), and is recorded as ``aborted``. Otherwise the task's
        final status, or ``"unknown"``."""
        answer = self.app.broker.cancel(
            self.queue, self.id, _cancel_record(self.app), abort=True, now_ms=_ms(self.app)
        )
        # '' from the broker: no live state; the final record (while kept) says what it was
        return answer or self.status()

    # -- async

    async def info_async(self) -> dict[str, Any]:
        found = describe(await self.app.broker.get_async(self.queue, self.id))
        if found is None:
            raise TaskNotFound(f"no task {self.id} in queue {self.queue!r} (or its result expired)")
        return found

    async def status_async(self) -> str:
        found = describe(await self.app.broker.get_async(self.queue, self.id))
        return "unknown" if found is None else str(found["status"])

    async def result_async(self, timeout: float | None = None) -> Any:
        """The async form of :meth:`result`."""

        async def check() -> dict[str, Any] | None:
            d = describe(await self.app.broker.get_async(self.queue, self.id))
            return d if d is not None and d["status"] in FINAL else None

        done = await self.app.broker.wait_for_async(self.queue, self.id, _forever(timeout), check)
        return _outcome(self.id, done, timeout)

    async def cancel_async(self) -> bool:
        record = _cancel_record(self.app)
        return await self.app.broker.cancel_async(self.queue, self.id, record) == "cancelled"

    async def abort_async(self) -> str:
        """The async form of :meth:`abort`."""
        record = _cancel_record(self.app)
        answer = await self.app.broker.cancel_async(
            self.queue, self.id, record, abort=True, now_ms=_ms(self.app)
        )
        return answer or await self.status_async()


def _progress(raw: bytes | None) -> dict[str, Any] | None:
    """A stored progress report as ``current_task().progress`` writes it, or None: one
    written into Redis by anything else is left out rather than shown or failing the read."""
    if raw is None:
        return None
    try:
        p = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not (
        type(p) is dict
        and set(p) == {"fraction", "text", "at"}
        and type(p["fraction"]) in (int, float)
        and 0 <= p["fraction"] <= 1
        and (p["text"] is None or (type(p["text"]) is str and len(p["text"]) <= 200))
        and type(p["at"]) is int
    ):
        return None
    return {"fraction": float(p["fraction"]), "text": p["text"], "at": p["at"]}


def _forever(timeout: float | None) -> float:
    return 10 * 365 * 86_400.0 if timeout is None else max(0.0, timeout)


def _outcome(task_id: str, done: dict[str, Any] | None, timeout: float | None) -> Any:
    if done is None:
        raise ResultTimeout(f"task {task_id} did not finish within {timeout} s")
    if done["status"] == "succeeded":
        return done.get("result")
    raise TaskFailed(task_id, done["status"], done.get("error"))


def _ms(app: TaskQueue) -> int:
    from .clock import script_ms

    return script_ms(app.clock)


def _cancel_record(app: TaskQueue) -> bytes:
    return orjson.dumps({"status": "cancelled", "finished_at": int(app.clock.time() * 1000)})


__all__ = ["FINAL", "STATUSES", "TaskHandle", "describe"]
