"""The lifespan piece: embedded workers (off by default) and closing the asyncio client."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from taskq_core import TaskQueue, Worker
from taskq_core.embedded import EmbeddedWorkers


class TaskqLifespan:
    """Async context manager for a Starlette/FastAPI lifespan; see :func:`lifespan`.

    It is also callable with the application, so it can be the whole lifespan:
    ``Starlette(lifespan=taskq_starlette.lifespan(tq))``.
    """

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
        self._spec = EmbeddedWorkers(tq, embedded_workers, queues=queues, concurrency=concurrency)
        self._entered: list[EmbeddedWorkers] = []

    @property
    def workers(self) -> list[Worker]:
        """The embedded workers running now (empty outside the lifespan)."""
        return self._entered[-1].workers if self._entered else []

    def __call__(self, app: Any) -> TaskqLifespan:
        return self

    async def __aenter__(self) -> None:
        # a fresh handle on each entry (a test client may run one app's lifespan twice, or
        # nest it): handles of one TaskQueue share one pool, stopped by the last to leave
        s = self._spec
        w = EmbeddedWorkers(s.app, s.count, queues=s.queues, concurrency=s.concurrency)
        await w.start()
        self._entered.append(w)

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._entered.pop().stop()
        finally:
            # redis-py's asyncio connections belong to this loop: close them with it
            await self.tq.aclose()


def lifespan(
    tq: TaskQueue,
    embedded_workers: int = 0,
    *,
    queues: list[str] | None = None,
    concurrency: int | None = None,
) -> TaskqLifespan:
    """taskq's part of an application lifespan, to compose into your own::

        @asynccontextmanager
        async def app_lifespan(app):
            async with taskq_starlette.lifespan(tq, embedded_workers=2):
                yield

    ``embedded_workers`` workers (default 0) run as asyncio tasks of the server's loop while
    the application runs and stop with it (running tasks get the grace period). On exit the
    TaskQueue's asyncio Redis connections of that loop are closed.
    """
    return TaskqLifespan(tq, embedded_workers, queues=queues, concurrency=concurrency)
