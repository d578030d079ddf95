"""Running one delivery: decode and check its message, run an async task on the loop
(with its soft time limit), and turn what it returned or raised into an outcome.

``start`` is called by ``fetching.start_buffered``; sync tasks go to ``sync_tasks.py``; an
exception goes to ``outcomes.failed``; the outcome is recorded by ``outbox.finish``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import types
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

from ..brokers.base import Delivery
from ..context import current_trace, reset_trace, set_trace
from ..current import set_current
from ..errors import NotJSONSerializable, TaskTimeout
from ..message import BadMessage, Message, check_delivery, decode
from ..middleware import run_hooks, wrapped
from ..signing import BadSignature
from ..validation import JSON_LEAVES, check_json
from ..workflow.steps import poll_delay_ms, take_input
from .records import Running
from .sync_tasks import began_in_thread

if TYPE_CHECKING:
    from ..task import Task
    from .core import Worker

log = logging.getLogger("taskq.worker")


def _escape(text: str) -> str:
    """Text from a message, safe for one log line (no CR/LF or terminal escapes)."""
    return text[:200].encode("unicode_escape").decode("ascii")


@types.coroutine
def _go_on(coro: Coroutine[Any, Any, Any], waiting: Any) -> Generator[Any, Any, Any]:
    """Drive ``coro`` on, which already ran up to its first suspension, where it handed
    ``waiting`` to its runner: from here the asyncio.Task running this drives it."""
    while True:
        try:
            sent = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                waiting = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting = coro.send(sent)
            except StopIteration as stop:
                return stop.value


def start(worker: Worker, delivery: Delivery, run: Running) -> None:
    assert worker._loop is not None
    run.started = time.monotonic()
    run.started_ms = worker._now_ms()
    worker.counts.started += 1
    # run it at once up to its first suspension (3.12's eager tasks, by hand for 3.11):
    # a task that never waits costs no asyncio.Task, and one that does gets one then,
    # in the context its first step ran in
    coro = worker._execute(delivery, run)
    ctx = contextvars.copy_context()
    try:
        waiting = ctx.run(coro.send, None)
    except StopIteration:
        return
    except Exception as exc:
        worker._loop.create_task(worker._internal_error(delivery, run, exc), context=ctx)
        return
    run.task = worker._loop.create_task(worker._resumed(delivery, run, coro, waiting), context=ctx)


async def resumed(
    worker: Worker, delivery: Delivery, run: Running, coro: Coroutine[Any, Any, None], waiting: Any
) -> None:
    """The rest of a task's run, after its first suspension, in an asyncio.Task."""
    try:
        await _go_on(coro, waiting)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        await worker._internal_error(delivery, run, exc)


async def execute(worker: Worker, delivery: Delivery, run: Running) -> None:
    """Decode and check a delivery's message, run its task, and settle what came of it."""
    now_ms = run.started_ms
    base = {"worker": worker.id, "started_at": now_ms}
    try:
        msg = decode(
            delivery.body,
            worker.payload_limit,
            worker._verify,
            task_id=delivery.id,
            queue=delivery.queue,
        )
        check_delivery(msg, delivery.id, delivery.queue)
    except BadMessage as exc:
        # refused on its first delivery, before any of it is used: nothing of a message
        # that fails a check runs, and it cannot come back
        signature = isinstance(exc, BadSignature)
        if signature:
            worker.add_stat(delivery.queue, "bad_signature")
        worker._finish(
            run,
            "dead",
            {
                **base,
                "status": "dead",
                "finished_at": now_ms,
                "reason": "signature" if signature else "bad_message",
                "error": {"type": type(exc).__name__, "message": str(exc), "traceback": ""},
            },
        )
        log.warning("task %s dead-lettered: %s", _escape(delivery.id), _escape(str(exc)))
        return
    run.name = msg.task
    # kept in the final record: the message itself is deleted once the task settles
    base["enqueued_at"] = msg.enqueued_at
    task = worker.app.registry.get(msg.task)
    if task is None:
        worker._finish(
            run,
            "dead",
            {
                **base,
                "status": "dead",
                "task": msg.task,
                "finished_at": now_ms,
                "attempts": msg.attempt + 1,
                "reason": "unknown_task",
                "error": {
                    "type": "UnknownTask",
                    "traceback": "",
                    "message": f"no task named {msg.task!r} is registered in this worker",
                },
            },
        )
        log.warning(
            "task %s dead-lettered: no task named %s is registered", delivery.id, _escape(msg.task)
        )
        return
    run.message = msg
    if msg.expires_at is not None and worker._now_ms() >= msg.expires_at:
        expired(worker, run, task, msg, base)
        return
    if run.aborted_at:  # asked to abort while it waited in this worker's buffer
        worker._aborted(run, None, msg, base)
        return
    if msg.wf is not None and not take_input(msg):
        skipped(worker, run, msg, base)
        return
    if worker._hooks.before_task:
        run_hooks(worker._hooks.before_task, worker, msg)
    timeout = msg.timeout if msg.timeout is not None else task.timeout
    if not task.is_async and timeout is None:
        worker._start_sync(delivery, run, task, msg, base)
        return
    if timeout is not None and run.task is None:
        # still in start()'s eager first step, outside any task of this run's own: a time
        # limit (asyncio.timeout, under wait_for) binds to the current task, which here is
        # the fetch loop's or none at all (Python 3.12+). One suspension hands the run to
        # its own asyncio.Task first, so the limit can only ever cancel the task it limits.
        await asyncio.sleep(0)
    # the run's context is a fresh copy (see _start): most messages carry no trace
    # into one that has none, and need no context change
    token = set_trace(msg.trace) if msg.trace or current_trace() else None
    if task.is_async:
        set_current(run, msg)  # the run's context is its own: nothing to reset
    try:
        if not task.is_async:
            assert timeout is not None  # without one, _start_sync took it
            try:
                value = await worker._run_sync(task, msg, timeout, run)
            finally:
                began_in_thread(run, base)
        elif worker._hooks.wrap:
            with wrapped(worker._hooks.wrap, msg):
                if timeout is None:
                    value = await task.fn(*msg.args, **msg.kwargs)
                else:
                    value = await worker._run_async(task, msg, timeout)
        elif timeout is None:
            value = await task.fn(*msg.args, **msg.kwargs)
        else:
            value = await worker._run_async(task, msg, timeout)
    except asyncio.CancelledError:
        if run.aborted_at:  # cancelled because it was asked to abort (aborting.py)
            worker._aborted(run, task, msg, base)
            return
        raise  # the worker is shutting down: the lease is handed back, not settled
    except BaseException as exc:
        worker._complete(run, task, msg, base, ok=False, value=exc)
        return
    finally:
        if token is not None:
            reset_trace(token)
    worker._complete(run, task, msg, base, ok=True, value=value)


async def run_async(
    worker: Worker, task: Task[Any, Any], msg: Message, timeout: float | None
) -> Any:
    coro = task.fn(*msg.args, **msg.kwargs)
    if timeout is None:
        return await coro
    try:
        return await asyncio.wait_for(coro, timeout)
    except TimeoutError:
        raise TaskTimeout(
            f"task {task.name} ran past its soft time limit of {timeout:g}s"
        ) from None


def expired(
    worker: Worker, run: Running, task: Task[Any, Any], msg: Message, base: dict[str, Any]
) -> None:
    """A task not started before its ``expires`` time: not run, recorded as expired (or
    dead-lettered, when the task says ``expired_to_dead_letter``), never dropped."""
    assert msg.expires_at is not None
    error = {
        "type": "TaskExpired",
        "message": f"task {msg.task} was not started before it expired at {msg.expires_at} ms",
        "traceback": "",
    }
    dead = task.flow.expired_to_dead_letter
    worker._finish(
        run,
        "dead" if dead else "expired",
        {
            **base,
            "status": "dead" if dead else "expired",
            "task": msg.task,
            "attempts": msg.attempt,
            "expires_at": msg.expires_at,
            "finished_at": run.started_ms,
            "reason": "expired",
            "error": error,
        },
        error=error,
        runtime=0.0,
    )


def complete(
    worker: Worker,
    run: Running,
    task: Task[Any, Any],
    msg: Message,
    base: dict[str, Any],
    *,
    ok: bool,
    value: Any,
) -> None:
    """Settle an execution that returned ``value`` (``ok``) or raised it."""
    if ok and type(value) not in JSON_LEAVES:
        try:
            check_json(value, "result")
        except NotJSONSerializable as exc:
            ok, value = False, exc
    if not ok:
        if run.aborted_at:  # it stopped because it was asked to (TaskAborted, or any error)
            worker._aborted(run, task, msg, base)
            return
        worker._failed(run, task, msg, value, base)
        return
    if not value and msg.wf is not None and "poll" in msg.wf:
        polled(worker, run, msg, base)
        return
    # the end, read once (a sync task's in its thread): the run time from it, the
    # finish time as start plus run time
    runtime = (run.ended or time.monotonic()) - run.started
    worker._finish(
        run,
        "ok",
        {
            **base,
            "status": "succeeded",
            "task": msg.task,
            "result": value,
            "attempts": msg.attempt + 1,
            "finished_at": run.started_ms + int(runtime * 1000),
        },
        runtime=runtime,
    )


def skipped(worker: Worker, run: Running, msg: Message, base: dict[str, Any]) -> None:
    """A workflow step whose condition does not hold: not run, recorded as skipped."""
    worker._finish(
        run,
        "ok",
        {
            **base,
            "status": "skipped",
            "task": msg.task,
            "result": None,
            "attempts": msg.attempt,
            "finished_at": run.started_ms,
        },
        runtime=0.0,
    )


def polled(worker: Worker, run: Running, msg: Message, base: dict[str, Any]) -> None:
    """A workflow's polling check returned something false: run again after a growing
    delay, or failed with ``CheckTimedOut`` once its time is up."""
    delay_ms = poll_delay_ms(msg, worker._now_ms())
    if delay_ms is not None:
        msg.attempt += 1
        msg.due_at = worker._now_ms() + delay_ms  # wait-time metrics count from it
        worker._finish(run, "retry", {}, delay_ms, msg.encode(signer=worker.app.signer))
        return
    assert msg.wf is not None
    error = {
        "type": "CheckTimedOut",
        "message": f"check {msg.task} did not return true within {msg.wf['poll']['timeout']:g} s",
        "traceback": "",
    }
    worker._finish(
        run,
        "failed",
        {
            **base,
            "status": "failed",
            "task": msg.task,
            "error": error,
            "attempts": msg.attempt + 1,
            "finished_at": worker._now_ms(),
        },
        error=error,
    )
