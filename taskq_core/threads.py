"""Sync tasks' threads: running calls in them, and raising an exception inside one (how a
sync task's soft time limit fires)."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import functools
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger("taskq.worker")


class Interruptible:
    """Runs one call in a pool thread and can raise an exception inside it while it runs.

    The exception is delivered at the thread's next Python bytecode: a loop in Python stops,
    a call blocked in C code does not (the supervisor's hard timeout handles that).
    """

    __slots__ = ("_done", "_lock", "_thread_id")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._done = False

    def run(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        self._thread_id = threading.get_ident()
        try:
            return fn(*args, **kwargs)
        finally:
            # under the lock, so an interrupt can never land after this call has ended
            with self._lock:
                self._done = True

    def interrupt(self, exc_type: type[BaseException]) -> bool:
        """Raise ``exc_type`` in the thread if the call is still running."""
        with self._lock:
            if self._done or self._thread_id is None:
                return False
            n = ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread_id), ctypes.py_object(exc_type)
            )
            return bool(n == 1)


class ThreadRunner:
    """The threads that run a worker's sync tasks, handing results back to the loop in batches.

    ``loop.run_in_executor`` costs a ``concurrent.futures.Future``, a ``wrap_future`` and a
    wake-up of the loop (a write to its self-pipe) per call: about 35 us of CPU for a no-op
    task. Here a finished call is appended to a deque and the loop is woken once for all the
    calls that finished before it got round to them. Threads start as calls need them, up to
    ``size``; they are daemon threads, so one stuck in a task never keeps the process alive
    (the worker hands such a task back and reports it as a straggler).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("a ThreadRunner needs at least one thread")
        self._loop = loop
        self._size = size
        self._name = name
        self._calls: queue.SimpleQueue[
            tuple[Callable[[bool, Any], None], Callable[[], Any]] | None
        ] = queue.SimpleQueue()
        self._finished: collections.deque[tuple[Callable[[bool, Any], None], bool, Any]] = (
            collections.deque()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._queued = 0
        self._running = 0
        self._wake_pending = False

    @property
    def running(self) -> int:
        """Calls running in a thread now."""
        return self._running

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``fn()`` in a thread; the future (of the loop) gets its result or exception."""
        fut: asyncio.Future[T] = self._loop.create_future()
        self.call(fn, functools.partial(_resolve, fut))
        return fut

    def call(self, fn: Callable[[], T], done: Callable[[bool, Any], None]) -> None:
        """Run ``fn()`` in a thread, then ``done(True, result)`` or ``done(False, exception)``
        in the loop: no future and no ``asyncio.Task`` to wake (what a sync task without a
        soft time limit needs; :meth:`submit` is this with a future)."""
        with self._lock:
            self._queued += 1
            start = self._queued > self._idle and self._threads < self._size
            if start:
                self._threads += 1
        if start:
            threading.Thread(
                target=self._work, name=f"{self._name}-{self._threads}", daemon=True
            ).start()
        self._calls.put((done, fn))

    def shutdown(self) -> None:
        """Let idle threads end; threads inside a call end when it returns."""
        with self._lock:
            n = self._threads
            self._queued += n
        for _ in range(n):
            self._calls.put(None)

    def _work(self) -> None:
        lock = self._lock
        while True:
            with lock:
                self._idle += 1
            item = self._calls.get()
            with lock:
                self._idle -= 1
                self._queued -= 1
                if item is None:
                    self._threads -= 1
                    return
                self._running += 1
            done, fn = item
            try:
                value, ok = fn(), True
            except BaseException as exc:  # handed to the loop, like concurrent.futures does
                value, ok = exc, False
            with lock:
                self._running -= 1
            self._finished.append((done, ok, value))
            # the loop is woken only if no wake-up is pending: that one drains this result
            # too (the flag is cleared before draining starts, never after)
            if not self._wake_pending:
                self._wake_pending = True
                try:
                    self._loop.call_soon_threadsafe(self._drain)
                except RuntimeError:  # the loop is closed: nobody waits for results
                    return
            del item, done, fn, value

    def _drain(self) -> None:
        self._wake_pending = False
        finished = self._finished
        while finished:
            done, ok, value = finished.popleft()
            try:
                done(ok, value)
            except Exception:
                # one failing callback must not keep the results behind it from the loop
                log.exception("a thread call's completion failed")


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.done():  # cancelled meanwhile
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
