"""Running what was enqueued: a real :class:`~taskq_core.worker.Worker`, in burst mode, until
nothing is left that is due."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..middleware import Middleware, TaskEvent
from ..scheduler import Scheduler
from ..worker import Worker

if TYPE_CHECKING:
    from ..app import TaskQueue

#: a scheduler that acts as if it had run all along: every tick the clock passes is enqueued
_ALWAYS = 100 * 365 * 86_400.0


@dataclass(frozen=True, slots=True)
class Ran:
    """One execution a drain saw: ``outcome`` is ``ok``, ``retry``, ``failed`` or ``dead``."""

    id: str
    name: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outcome: str
    result: Any = None
    error: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class DrainTimeout(AssertionError):
    """A drain still had tasks to run when its time was up (a task that enqueues itself
    forever, or one that never returns)."""


class _Seen(Middleware):
    def __init__(self) -> None:
        self.ran: list[Ran] = []

    def after_task(self, worker: Worker, event: TaskEvent) -> None:
        m = event.message
        self.ran.append(
            Ran(
                m.id,
                m.task,
                m.queue,
                tuple(m.args),
                dict(m.kwargs),
                event.outcome,
                event.result,
                event.error,
            )
        )


class Drainer:
    """Runs an app's tasks until its queues hold nothing due: :meth:`drain` (blocking) or
    :meth:`drain_async`. Due schedules (``tq.schedule``) are enqueued first, by the app's
    clock, as a scheduler running since this Drainer was made would have.

    Tasks run one at a time (``concurrency=1``) in queue order, so tests are repeatable;
    tasks that a task enqueues run in the same drain. Retries and delayed tasks not yet due
    by the app's clock stay queued: advance a :class:`~taskq_core.testing.TestClock` and
    drain again.
    """

    def __init__(self, app: TaskQueue) -> None:
        self.app = app
        self._scheduler = Scheduler(app, grace=_ALWAYS)
        self._scheduler.tick(app.clock.time())  # schedules count from now

    def _queues(self, queues: list[str] | None) -> list[str]:
        if queues is not None:
            return queues
        task_queues = [t.routed_queue for t in self.app.registry.values()]
        return list(dict.fromkeys([*self.app.queues(), *task_queues]))

    def drain(
        self, *, queues: list[str] | None = None, timeout: float = 30.0, concurrency: int = 1
    ) -> list[Ran]:
        """Run tasks until none is due; returns what ran, in order. Not from inside a running
        event loop: use ``await drain_async()`` there."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "drain() blocks and cannot run inside an event loop: use await drain_async()"
            )
        return asyncio.run(self._owned(queues, timeout, concurrency))

    async def _owned(self, queues: list[str] | None, timeout: float, concurrency: int) -> list[Ran]:
        try:
            return await self.drain_async(queues=queues, timeout=timeout, concurrency=concurrency)
        finally:
            # the async connections belong to this loop, which ends here (as Worker.run does)
            await self.app.broker.aclose()

    async def drain_async(
        self, *, queues: list[str] | None = None, timeout: float = 30.0, concurrency: int = 1
    ) -> list[Ran]:
        """The async form of :meth:`drain`, in the caller's event loop."""
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if self.app.schedules:
            await self._scheduler.tick_async(self.app.clock.time())
        seen = _Seen()
        worker = Worker(
            self.app,
            queues=self._queues(queues),
            concurrency=concurrency,
            burst=True,
            handle_signals=False,
            grace_period=0,
            middleware=[seen],
        )
        run = asyncio.ensure_future(worker.async_run())
        done, _ = await asyncio.wait({run}, timeout=timeout)
        if not done:
            worker.stop()
            await run
            raise DrainTimeout(
                f"tasks were still running after {timeout:g} s ({len(seen.ran)} ran); a task "
                "that enqueues itself, or never returns? ran: "
                + ", ".join(r.name for r in seen.ran[-10:])
            )
        run.result()
        return seen.ran
