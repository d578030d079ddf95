"""Idle workers' wake-ups: one connection per event loop LISTENs on the namespace's wake
channel, and the enqueue, settle and release functions ``NOTIFY`` it (payload: the queue)
when they commit.

A notification that arrives while no one waits is kept (one per queue) and ends the next
wait on that queue at once, as the wake token of the Redis broker does: a task enqueued
between a worker's empty fetch and its wait is not slept through. A wait always ends at
its timeout too (the worker's idle poll), so a notification lost with a broken link costs
at most that long. While the link is down, the listener reconnects with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import psycopg

log = logging.getLogger("taskq.postgres")
_NUDGE = "\x00nudge:"  # cannot clash with a queue name (no control characters there)


class Listener:
    """The LISTEN connection of one event loop and the waits on it."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], channel: str, ns: str) -> None:
        self.conninfo = conninfo
        self.kwargs = kwargs
        self.channel = channel
        self.pending: set[str] = set()
        self.waiters: list[tuple[frozenset[str], asyncio.Future[None]]] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def _start(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._listen())

    async def _listen(self) -> None:
        backoff = 0.1
        while not self.closed:
            try:
                conn = await psycopg.AsyncConnection.connect(self.conninfo, **self.kwargs)
                try:
                    await conn.execute(f"LISTEN {self.channel}")
                    self.ready.set()
                    backoff = 0.1
                    # the link was (re)made: anything sent meanwhile may be lost, so every
                    # waiter fetches once more
                    self._wake_all()
                    async for note in conn.notifies():
                        self._woken(note.payload)
                finally:
                    self.ready.clear()
                    with contextlib.suppress(Exception):
                        await conn.close()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.closed:
                    return
                log.warning(
                    "taskq: the LISTEN connection failed (%s); again in %.1fs",
                    type(exc).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _woken(self, name: str) -> None:
        for i, (names, fut) in enumerate(self.waiters):
            if name in names and not fut.done():
                del self.waiters[i]
                fut.set_result(None)
                return
        self.pending.add(name)

    def _wake_all(self) -> None:
        for _, fut in self.waiters:
            if not fut.done():
                fut.set_result(None)
        self.waiters.clear()

    def nudge(self, waiter: str) -> None:
        self._woken(_NUDGE + waiter)

    async def wait(self, queues: Sequence[str], timeout: float, nudge: str | None) -> bool:
        if timeout <= 0:
            return False
        self._start()
        names = frozenset([*queues, *([_NUDGE + nudge] if nudge is not None else [])])
        hit = names & self.pending
        if hit:
            self.pending -= hit
            return True
        if not self.ready.is_set():
            # not listening yet (the first wait of this loop, or the link is down): a
            # notification sent before LISTEN took hold is lost, so once it holds the
            # caller fetches again rather than sleep through a task
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (names, fut)
        self.waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            if entry in self.waiters:
                self.waiters.remove(entry)

    async def close(self) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task
