"""The test broker: a wrapper around a real broker (in-memory or Redis) that records what is
enqueued and, in eager mode, runs each task inline instead of queueing it.

Everything else is passed to the wrapped broker untouched, so workers, handles and the admin
routes run the real code paths; the worker and the brokers themselves know nothing of tests.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from ..brokers.base import Broker, EnqueueItem, TaskState
from ..message import Message, decode
from ..validation import check_json
from .records import Enqueued, Recorder

if TYPE_CHECKING:
    from ..app import TaskQueue

T = TypeVar("T")


class TestBroker:
    """Records enqueues into :attr:`recorder`; with :attr:`eager` set, runs them inline.

    Eager runs (see :func:`taskq_core.testing.eager`) store their result here, so
    ``handle.result()`` and ``handle.status()`` answer as for a task a worker ran.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, inner: Broker, app: TaskQueue) -> None:
        self.inner = inner
        self.app = app
        self.url = inner.url
        self.recorder = Recorder()
        self.eager = False
        self._ran: dict[tuple[str, str], TaskState] = {}
        self._lock = threading.Lock()
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"TestBroker({self.inner!r}{', eager' if self.eager else ''})"

    def __getattr__(self, name: str) -> Any:
        # every operation but those below is the wrapped broker's own
        if name.endswith("_async"):
            self._watch_loop()
        return getattr(self.inner, name)

    # -- async connections: closed with the event loop that opened them

    def _watch_loop(self) -> None:
        """Close the wrapped broker's connections of the running loop when that loop shuts
        down. A test's loop (pytest-asyncio's, ``asyncio.run``'s) ends with the test, before
        the fixture that isolated the app can close anything, and Redis's async connections
        belong to their loop: left open, they end as ResourceWarnings, which
        ``filterwarnings = error`` turns into failures of some later test. Loops end by
        closing their async generators (``shutdown_asyncgens``), so one started here in the
        loop does the closing."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if loop in self._closers:
            return
        closer = self._close_at_shutdown()
        # first iterated in this loop, so this loop's shutdown finalises it; the task takes
        # it to its yield, where it waits
        self._closers[loop] = (closer, loop.create_task(_start(closer)))

    async def _close_at_shutdown(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.inner.aclose()

    # -- producers

    def enqueue(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]:
        if self.eager:
            return [self._run_inline(item) for item in items]
        ids = self.inner.enqueue(items, now_ms)
        self._record(items, ids)
        return ids

    async def enqueue_async(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]:
        self._watch_loop()
        if self.eager:
            return [await self._run_inline_async(item) for item in items]
        ids = await self.inner.enqueue_async(items, now_ms)
        self._record(items, ids)
        return ids

    def _record(self, items: Sequence[EnqueueItem], ids: Sequence[str]) -> None:
        # an id other than the item's own: an idempotency key matched an earlier task, so
        # nothing new was enqueued
        self.recorder.add(
            [Enqueued.from_item(it) for it, i in zip(items, ids, strict=True) if i == it.id]
        )

    # -- eager mode: the task runs in the caller, exceptions propagate

    def _start_inline(self, item: EnqueueItem) -> tuple[Message, Callable[..., Any], bool]:
        message = decode(item.body, task_id=item.id, queue=item.queue)
        self.recorder.add([Enqueued.from_item(item)])
        task = self.app.get_task(message.task)
        return message, task.fn, task.is_async

    def _run_inline(self, item: EnqueueItem) -> str:
        message, fn, is_async = self._start_inline(item)
        if not is_async:
            value = fn(*message.args, **message.kwargs)
        else:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                value = asyncio.run(fn(*message.args, **message.kwargs))
            else:
                # a blocking enqueue from inside a running loop: the coroutine gets a loop of
                # its own in a thread (the caller blocks, as its enqueue would have)
                value = _run_in_thread(lambda: asyncio.run(fn(*message.args, **message.kwargs)))
        return self._store(message, item.body, value)

    async def _run_inline_async(self, item: EnqueueItem) -> str:
        message, fn, is_async = self._start_inline(item)
        value = fn(*message.args, **message.kwargs)
        if is_async:
            value = await value
        return self._store(message, item.body, value)

    def _store(self, message: Message, body: bytes, value: Any) -> str:
        check_json(value, "result")  # as a worker does: a result must be JSON
        record = orjson.dumps(
            {
                "status": "succeeded",
                "task": message.task,
                "result": value,
                "attempts": 1,
                "finished_at": int(self.app.clock.time() * 1000),
            }
        )
        with self._lock:
            self._ran[(message.queue, message.id)] = TaskState(
                message.id, message.queue, None, record, body
            )
        return message.id

    # -- handles of eager runs

    def get(self, queue: str, task_id: str) -> TaskState | None:
        with self._lock:
            ran = self._ran.get((queue, task_id))
        return ran if ran is not None else self.inner.get(queue, task_id)

    async def get_async(self, queue: str, task_id: str) -> TaskState | None:
        self._watch_loop()
        with self._lock:
            ran = self._ran.get((queue, task_id))
        return ran if ran is not None else await self.inner.get_async(queue, task_id)

    def wait_for(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], T | None]
    ) -> T | None:
        with self._lock:
            ran = (queue, task_id) in self._ran
        return check() if ran else self.inner.wait_for(queue, task_id, timeout, check)

    async def wait_for_async(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        self._watch_loop()
        with self._lock:
            ran = (queue, task_id) in self._ran
        if ran:
            return await check()
        return await self.inner.wait_for_async(queue, task_id, timeout, check)


async def _start(gen: AsyncIterator[None]) -> None:
    await gen.__anext__()


def _run_in_thread(fn: Callable[[], T]) -> T:
    out: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="taskq-eager")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return out[0]
