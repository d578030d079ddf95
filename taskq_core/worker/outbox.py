"""The outbox: outcomes of ended tasks and queue stats waiting for the next round trip.

``finish`` records a task's end here; the fetch loop (``fetching.py``) takes the outbox
with its next fetch, or the settle loop (``settling.py``) flushes it while the fetch loop
sleeps; both run ``settle.lua`` (in ``fetch.lua`` for a fetch). A failed round trip puts
what it took back (``restore_outbox``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from ..brokers.base import Outcome
from ..message import Message
from ..middleware import TaskEvent, run_hooks
from ..observability.durability import explain_refused
from ..workflow.steps import step_outcome
from .outcomes import error_record
from .records import Running

if TYPE_CHECKING:
    from .core import Worker

_COUNTER = {
    "ok": "succeeded",
    "retry": "retried",
    "failed": "failed",
    "dead": "dead",
    "expired": "expired",
    "aborted": "aborted",
}


def _wait(started_ms: int, message: Message) -> float:
    """Seconds from enqueue (or due time) to start; never negative (clock skew)."""
    waited = (started_ms - (message.due_at or message.queued_at)) / 1000
    return waited if waited > 0 else 0.0


def take_outbox(worker: Worker) -> tuple[list[Outcome], dict[str, dict[str, int]] | None]:
    """The outcomes and stats for a round trip (None: no stats); the outbox starts empty."""
    if worker._hooks.before_settle:
        run_hooks(worker._hooks.before_settle, worker)
    out, stats = worker._outbox, worker._stats
    worker._outbox, worker._stats = [], {}
    return out, (stats or None)


def restore_outbox(
    worker: Worker, out: list[Outcome], stats: dict[str, dict[str, int]] | None
) -> None:
    # a round trip failed: nothing settled may be dropped, so it goes back for the next one
    worker._outbox[:0] = out
    for queue, fields in (stats or {}).items():
        mine = worker._stats.setdefault(queue, {})
        for field, count in fields.items():
            mine[field] = mine.get(field, 0) + count


def add_stat(worker: Worker, queue: str, name: str, n: int = 1) -> None:
    """Add ``n`` to a counter of ``queue``; written with the next settle round trip."""
    fields = worker._stats.setdefault(queue, {})
    fields[name] = fields.get(name, 0) + n


def finish(  # noqa: PLR0917 - a method of Worker: worker is its self
    worker: Worker,
    run: Running,
    kind: str,
    record: dict[str, Any],
    retry_delay_ms: int = 0,
    retry_body: bytes = b"",
    *,
    error: dict[str, str] | None = None,
    timed_out: bool = False,
    runtime: float | None = None,
) -> None:
    """A task ended as ``kind`` (ok, retry, failed, dead): its outcome goes to the outbox, its
    slot is free, the ``after_task`` hooks and the counts learn of it."""
    lease = run.lease
    if runtime is None:
        runtime = (run.ended or time.monotonic()) - run.started
    # the average for prefetching is of the time a task holds its slot, until the loop
    # sees it end (a sync task's wait for a thread and hand-back included)
    held = runtime if not run.began else time.monotonic() - run.started + run.queued
    worker._runtime += (held - worker._runtime) * 0.1
    if worker._hooks.after_task and run.message is not None:
        message = run.message
        event = TaskEvent(
            message,
            kind,
            runtime,
            _wait(run.started_ms, message),
            error,
            timed_out,
            record.get("result") if kind == "ok" else None,
        )
        run_hooks(worker._hooks.after_task, worker, event)
    worker._held.pop((lease.queue, lease.id), None)
    try:
        data = orjson.dumps(record)
    except TypeError as exc:  # pragma: no cover - results are checked before
        data = orjson.dumps({**record, "result": None, "error": error_record(exc)})
    worker._outbox.append(
        Outcome(
            lease.queue,
            lease.id,
            lease.fence,
            kind,  # type: ignore[arg-type]
            run.name,
            data,
            retry_delay_ms,
            retry_body,
            # a workflow step's final outcome advances its workflow in the same settle
            step_outcome(run.message, kind, record, worker.payload_limit)
            if run.message is not None and run.message.wf is not None
            else None,
        )
    )
    if kind == "ok":
        worker.counts.succeeded += 1
    else:
        counter = _COUNTER[kind]
        setattr(worker.counts, counter, getattr(worker.counts, counter) + 1)
    assert worker._slot_freed is not None
    assert worker._outbox_ready is not None
    worker._slot_freed.set()
    worker._outbox_ready.set()
    if worker._buffer and not worker._start_pending:
        worker._start_pending = True
        assert worker._loop is not None
        worker._loop.call_soon(worker._start_buffered)
    if worker.burst and not worker._held:
        worker._nudge()


def note_stale(worker: Worker, stale: list[Outcome]) -> None:
    """Count and explain the outcomes the broker refused (their lease was no longer ours)."""
    if stale:
        worker.counts.stale += len(stale)
        # why: a lapsed lease (delivered again), or Redis lost its data (the task is gone)
        explain_refused(worker, stale)
