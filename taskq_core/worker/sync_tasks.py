"""Sync tasks: plain functions run in the worker's threads (``threads.ThreadRunner``).

Without a soft time limit a task is settled from its thread's completion (``start_sync``);
with one, ``running.execute`` awaits ``run_sync``, which interrupts the thread past it.
Either way the result goes to ``running.complete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..brokers.base import Delivery
from ..context import reset_trace, set_trace
from ..current import reset_current, set_current
from ..errors import TaskTimeout
from ..message import Message
from ..middleware import wrapped
from ..threads import Interruptible
from .records import Running

if TYPE_CHECKING:
    from ..task import Task
    from .core import Worker

log = logging.getLogger("taskq.worker")

_NO_WRAP = contextlib.nullcontext()


def start_sync(  # noqa: PLR0917 - a method of Worker: worker is its self
    worker: Worker,
    delivery: Delivery,
    run: Running,
    task: Task[Any, Any],
    msg: Message,
    base: dict[str, Any],
) -> None:
    """Run a sync task without a soft time limit in a thread, and settle it from the
    thread's completion: no coroutine waits for it, so it costs no ``asyncio.Task``.
    ``run.task`` is a future that stands for the run (drain waits on it, a hand-back
    cancels it, and a cancelled run is not settled)."""
    assert worker._threads is not None
    assert worker._loop is not None
    running: asyncio.Future[None] = worker._loop.create_future()
    run.task = running

    def done(ok: bool, value: Any) -> None:
        if running.done():  # handed back meanwhile: not ours to settle
            return
        running.set_result(None)
        began_in_thread(run, base)
        try:
            worker._complete(run, task, msg, base, ok=ok, value=value)
        except Exception as exc:
            worker._loop.create_task(worker._internal_error(delivery, run, exc))  # type: ignore[union-attr]

    worker._threads.call(worker._in_thread(task, msg, run), done)


def in_thread(
    worker: Worker,
    task: Task[Any, Any],
    msg: Message,
    run: Running,
    call: Interruptible | None = None,
) -> Callable[[], Any]:
    """The call a thread makes for a sync task: in its trace context, inside the
    middleware's ``wrap`` contexts (through ``call`` when it may be interrupted),
    noting in ``run`` when it began and ended."""
    trace, wrap, now_ms = msg.trace, worker._hooks.wrap, worker._now_ms
    fn, args, kwargs = task.fn, msg.args, msg.kwargs

    def call_in_thread() -> Any:
        token = set_trace(trace)
        current = set_current(run, msg)
        run.began = time.monotonic()
        # wall time from the app's clock, as every other (a test's ManualClock too)
        run.began_ms = now_ms()
        try:
            with wrapped(wrap, msg) if wrap else _NO_WRAP:
                if call is not None:
                    return call.run(fn, args, kwargs)
                return fn(*args, **kwargs)
        finally:
            run.ended = time.monotonic()
            reset_current(current)
            reset_trace(token)

    return call_in_thread


async def run_sync(
    worker: Worker, task: Task[Any, Any], msg: Message, timeout: float, run: Running
) -> Any:
    """Run a sync task with a soft time limit: past it, raise inside its thread."""
    assert worker._threads is not None
    call = Interruptible()
    fut = worker._threads.submit(worker._in_thread(task, msg, run, call))
    try:
        return await asyncio.wait_for(asyncio.shield(fut), timeout)
    except TimeoutError:
        pass
    call.interrupt(TaskTimeout)
    worker.counts.timed_out += 1
    with contextlib.suppress(BaseException):
        await asyncio.wait_for(asyncio.shield(fut), 1.0)
    if not fut.done():
        log.warning(
            "worker %s: sync task %s did not stop after its soft time limit (blocked "
            "in C code?); its thread stays busy until it returns",
            worker.id,
            msg.id,
        )
    raise TaskTimeout(f"task {task.name} ran past its soft time limit of {timeout:g}s")


def began_in_thread(run: Running, base: dict[str, Any]) -> None:
    """A sync task started when its thread began the call: the wait for a free thread is
    queue wait, not run time (``sync_threads`` may be fewer than the slots)."""
    if run.began:
        run.queued = run.began - run.started
        run.started_ms = run.began_ms
        run.started = run.began
        base["started_at"] = run.started_ms
