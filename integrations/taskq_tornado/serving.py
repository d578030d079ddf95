"""Embedded workers on Tornado's IOLoop while the server runs."""

from __future__ import annotations

from types import TracebackType

from taskq_core import TaskQueue, Worker
from taskq_core.embedded import EmbeddedWorkers


class TaskqServing:
    """Async context manager around serving; see :func:`serving`."""

    def __init__(
        self,
        tq: TaskQueue,
        embedded_workers: int = 0,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.tq = tq
        # built (and so validated) now: a bad count fails at import, not at server start
        self._pool = EmbeddedWorkers(tq, embedded_workers, queues=queues, concurrency=concurrency)

    @property
    def workers(self) -> list[Worker]:
        """The embedded workers running now (empty outside the context)."""
        return self._pool.workers

    async def __aenter__(self) -> TaskqServing:
        await self._pool.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._pool.stop()
        finally:
            # redis-py's asyncio connections belong to this loop: close them with it
            await self.tq.aclose()


def serving(
    tq: TaskQueue,
    embedded_workers: int = 0,
    *,
    queues: list[str] | None = None,
    concurrency: int | None = None,
) -> TaskqServing:
    """``async with taskq_tornado.serving(tq, embedded_workers=2):`` around the code that
    listens and waits for the shutdown signal: the workers run as tasks of the IOLoop from
    entry (start the server inside) to exit, where they stop fetching, running tasks get
    the grace period and the rest go back to their queues."""
    return TaskqServing(tq, embedded_workers, queues=queues, concurrency=concurrency)
