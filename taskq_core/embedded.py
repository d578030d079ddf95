"""Workers embedded in an async web server's event loop (Starlette, FastAPI, aiohttp, Litestar,
Quart, Sanic).

Off by default: production runs ``taskq worker`` processes. For small deployments and
development, ``EmbeddedWorkers(tq, 2)`` runs two workers as asyncio tasks of the server's own
loop, started and stopped by the framework's lifespan::

    async with EmbeddedWorkers(tq, 2):
        ...  # the server runs; on exit the workers stop fetching, finish (grace period), return

Entering twice for the same TaskQueue in the same loop (a lifespan composed twice, an adapter
installed twice) starts the workers once: the pool is shared and stops when the last user
leaves, so double installs are harmless. Workers never install signal handlers here: the
server owns the signals and stops the lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import InvalidOption

if TYPE_CHECKING:
    from .app import TaskQueue
    from .worker import Worker

log = logging.getLogger("taskq.embedded")

#: extra seconds, beyond a worker's grace period, before a worker that did not return is
#: cancelled (the worker itself hands running tasks back when its grace period ends)
_STOP_MARGIN = 10.0


@dataclass(slots=True)
class _Pool:
    loop: asyncio.AbstractEventLoop
    workers: list[Worker]
    tasks: list[asyncio.Task[None]]
    users: int = 1
    stopped: asyncio.Event = field(default_factory=asyncio.Event)


_pools: weakref.WeakKeyDictionary[TaskQueue, _Pool] = weakref.WeakKeyDictionary()


class EmbeddedWorkers:
    """``count`` workers of ``app`` run as asyncio tasks while the context is entered.

    ``queues``, ``concurrency`` and ``grace_period`` are passed to each
    :class:`~taskq_core.worker.Worker`. ``count=0`` does nothing, so adapters can always
    enter it.
    """

    def __init__(
        self,
        app: TaskQueue,
        count: int = 1,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        grace_period: float | None = None,
    ) -> None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 64:
            raise InvalidOption(f"embedded_workers must be an integer from 0 to 64, got {count!r}")
        self.app = app
        self.count = count
        self.queues = queues
        self.concurrency = concurrency
        self.grace_period = grace_period
        self._pool: _Pool | None = None

    @property
    def workers(self) -> list[Worker]:
        """The running workers (shared with any other user of the same pool)."""
        return list(self._pool.workers) if self._pool is not None else []

    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The asyncio tasks running the workers."""
        return list(self._pool.tasks) if self._pool is not None else []

    async def start(self) -> None:
        """Start the workers (or join the pool already running for this app in this loop)."""
        if self.count == 0 or self._pool is not None:
            return
        loop = asyncio.get_running_loop()
        pool = _pools.get(self.app)
        if pool is not None and pool.loop is loop and not pool.stopped.is_set():
            pool.users += 1
            self._pool = pool
            return
        workers = [
            self.app.worker(
                queues=self.queues,
                concurrency=self.concurrency,
                grace_period=self.grace_period,
                handle_signals=False,
            )
            for _ in range(self.count)
        ]
        tasks = [
            asyncio.create_task(w.async_run(), name=f"taskq-embedded-{i}")
            for i, w in enumerate(workers)
        ]
        for t in tasks:
            t.add_done_callback(_report_crash)
        self._pool = _pools[self.app] = _Pool(loop, workers, tasks)
        log.info("started %d embedded worker(s)", self.count)

    async def stop(self) -> None:
        """Stop fetching and wait for the workers to return (the last user stops the pool)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.users -= 1
        if pool.users > 0:
            return
        if _pools.get(self.app) is pool:
            del _pools[self.app]
        for w in pool.workers:
            w.stop()
        grace = max((w.grace_period for w in pool.workers), default=0.0)
        _, late = await asyncio.wait(pool.tasks, timeout=grace + _STOP_MARGIN)
        for t in late:
            # a worker that outlived its grace period is stuck in the loop: cancel it so
            # the server's shutdown never hangs and no task of ours is left behind
            log.warning("embedded worker %s did not stop in time, cancelling it", t.get_name())
            t.cancel()
        for t in pool.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        pool.stopped.set()
        log.info("stopped %d embedded worker(s)", len(pool.workers))

    async def __aenter__(self) -> EmbeddedWorkers:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


def _report_crash(task: asyncio.Task[None]) -> None:
    # a worker that dies while the server runs must not do so silently
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("embedded worker %s crashed", task.get_name(), exc_info=exc)
