"""The scheduler: enqueues the app's schedules (``tq.schedule(...)``) when they are due.

``Scheduler(app).run()`` blocks and handles SIGTERM/SIGINT; ``await async_run()`` runs in the
caller's loop (signals left to the host unless ``handle_signals=True``); ``stop()`` is safe
from any thread; ``tick(now)`` enqueues what is due at ``now`` and is what the loop calls.

Guarantees:

- **One task per tick, however many schedulers run.** Each tick is enqueued with the
  idempotency key ``schedule:<hash of the name>:<tick ms>`` (``Schedule.dedup_key``); the
  enqueue script checks and sets it atomically, so concurrent schedulers collapse to one
  task. The key lives ``idempotency_ttl`` (24 h by default).
- **No catch-up.** Ticks that fell due while no scheduler ran are not enqueued: a scheduler
  starts with the ticks due at or after its start. While it runs, every tick is enqueued
  even if the loop woke late, as long as it is at most ``grace`` seconds old (default 60);
  older ones (a suspended host) are skipped, logged and counted in ``missed``.
- The loop sleeps until the next tick or heartbeat and never polls; ``stop()`` wakes it.
  A failed enqueue (Redis down) is retried a second later, with the same keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import time
import uuid
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from . import scheduler_store
from .errors import InvalidOption
from .redact import redact_text
from .schedule import Schedule
from .task import Signature

if TYPE_CHECKING:
    from .app import TaskQueue
    from .handle import TaskHandle

log = logging.getLogger("taskq.scheduler")

RETRY_AFTER = 1.0  # seconds before a failed enqueue is tried again


@dataclass(frozen=True, slots=True)
class Fired:
    """One tick enqueued: ``created`` is False when another scheduler had enqueued it."""

    schedule: str
    tick_ms: int
    task_id: str
    created: bool


def now_ms(now: float) -> int:
    """Epoch seconds to whole milliseconds; a float meant as an exact millisecond may land a
    hair below it (1.8e9 s has ~0.2 us resolution), so round to the microsecond first."""
    return math.floor(round(now * 1000, 3))


class Scheduler:
    """Enqueues the schedules of ``app`` on time; see the module docstring."""

    def __init__(
        self,
        app: TaskQueue,
        *,
        heartbeat_interval: float = 5.0,
        grace: float = 60.0,
        handle_signals: bool | None = None,
    ) -> None:
        if not heartbeat_interval > 0 or not grace >= 0:
            raise InvalidOption("heartbeat_interval must be > 0 and grace >= 0 (seconds)")
        self.app = app
        self.id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.heartbeat_interval = heartbeat_interval
        self.grace = grace
        self.handle_signals = handle_signals
        #: ticks skipped because they were older than ``grace`` when the loop woke
        self.missed = 0
        self.last_fired: Fired | None = None
        self.started_at: float | None = None
        self._next: dict[str, int] = {}  # schedule name -> next tick not yet handled (ms)
        self._since: int | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"Scheduler({self.id}, schedules={len(self.app.schedules)})"

    # -- ticks

    def _schedules(self) -> list[Schedule]:
        return list(self.app.schedules.values())

    def next_runs(self, now: float | None = None) -> dict[str, int]:
        """Each schedule's next tick not yet enqueued (epoch ms)."""
        at = now_ms(self.app.clock.time() if now is None else now)
        since = self._since if self._since is not None else at
        return {
            s.name: self._next[s.name] if s.name in self._next else s.next_after_ms(since - 1)
            for s in self._schedules()
        }

    def next_due(self) -> float | None:
        """Epoch seconds of the earliest pending tick (None without schedules)."""
        runs = self.next_runs()
        return min(runs.values()) / 1000 if runs else None

    def _due(self, now: float) -> tuple[list[tuple[Schedule, int]], dict[str, int], int]:
        """The ticks to enqueue at ``now``, the next tick of each schedule after them, and
        how many ticks were skipped (counted once the enqueue succeeded)."""
        at = now_ms(now)
        if self._since is None:
            self._since = at
        oldest = at - int(self.grace * 1000)
        due: list[tuple[Schedule, int]] = []
        advanced: dict[str, int] = {}
        missed = 0
        for s in self._schedules():
            tick = self._next[s.name] if s.name in self._next else s.next_after_ms(self._since - 1)
            if tick < oldest:
                skipped = tick
                tick = s.next_after_ms(oldest - 1)
                missed += _count(s, skipped, tick)
                log.warning("schedule %r: ticks older than %gs skipped", s.name, self.grace)
            while tick <= at:
                due.append((s, tick))
                tick = s.next_after_ms(tick)
            advanced[s.name] = tick
        return due, advanced, missed

    def _signatures(self, due: list[tuple[Schedule, int]]) -> list[Signature]:
        sigs: list[Signature] = []
        for s, tick in due:
            base = s.signature()
            options = replace(
                base.options,
                idempotency_key=s.dedup_key(tick),
                # an id of our own: the returned id tells whether this enqueue made the task
                task_id=uuid.uuid4().hex,
            )
            sigs.append(Signature(base.task, base.args, base.kwargs, options))
        return sigs

    def _record(
        self,
        due: list[tuple[Schedule, int]],
        sigs: list[Signature],
        handles: list[TaskHandle],
        advanced: dict[str, int],
        missed: int,
    ) -> list[Fired]:
        fired = [
            Fired(s.name, tick, h.id, h.id == sig.options.task_id)
            for (s, tick), sig, h in zip(due, sigs, handles, strict=True)
        ]
        self._next.update(advanced)
        self.missed += missed
        if fired:
            self.last_fired = fired[-1]
        return fired

    def tick(self, now: float) -> list[Fired]:
        """Enqueue every tick due at or before ``now`` since the last one handled (one round
        trip for all of them); the first call starts from ``now`` itself."""
        due, advanced, missed = self._due(now)
        sigs = self._signatures(due)
        handles = self.app.enqueue_many(sigs) if sigs else []
        return self._record(due, sigs, handles, advanced, missed)

    async def tick_async(self, now: float) -> list[Fired]:
        """The async form of :meth:`tick`."""
        due, advanced, missed = self._due(now)
        sigs = self._signatures(due)
        handles = await self.app.enqueue_many_async(sigs) if sigs else []
        return self._record(due, sigs, handles, advanced, missed)

    # -- heartbeat

    def record(self) -> dict[str, Any]:
        """This scheduler's heartbeat record (JSON-safe)."""
        runs = self.next_runs()
        last = self.last_fired
        return {
            "id": self.id,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": int((self.started_at or time.time()) * 1000),
            "seen_at": int(time.time() * 1000),
            "schedules": [
                {**s.describe(), "next_run_at": runs.get(s.name)} for s in self._schedules()
            ],
            "last_tick": (
                {"schedule": last.schedule, "tick_at": last.tick_ms, "task_id": last.task_id}
                if last is not None
                else None
            ),
            "missed": self.missed,
        }

    def _ttl_ms(self) -> int:
        return int(self.heartbeat_interval * 3000)

    async def _beat(self) -> None:
        try:
            await scheduler_store.put_async(self.app.broker, self.id, self.record(), self._ttl_ms())
        except Exception as exc:
            log.warning("could not publish the scheduler heartbeat: %s", redact_text(str(exc)))

    # -- running

    def run(self) -> None:
        """Run until SIGTERM/SIGINT or :meth:`stop` (blocking; owns its event loop)."""
        if self.handle_signals is None:
            self.handle_signals = True
        asyncio.run(self._run_owned())

    async def _run_owned(self) -> None:
        try:
            await self.async_run()
        finally:
            await self.app.broker.aclose()

    async def async_run(self) -> None:
        """Run in the current event loop until stopped."""
        self._loop = loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        installed: list[signal.Signals] = []
        if self.handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.add_signal_handler(sig, self.stop)
                    installed.append(sig)
        self.app.load_imports()
        clock = self.app.clock
        self.started_at = time.time()
        self._since = now_ms(clock.time())
        log.info("scheduler %s started: %d schedules", self.id, len(self.app.schedules))
        next_beat = 0.0
        try:
            while not self._stopping:
                now = clock.time()
                retry_at = math.inf
                try:
                    for f in await self.tick_async(now):
                        log.info(
                            "schedule %r: tick %d %s task %s",
                            f.schedule,
                            f.tick_ms,
                            "enqueued" if f.created else "already enqueued as",
                            f.task_id,
                        )
                except Exception as exc:
                    log.warning("could not enqueue due ticks: %s", redact_text(str(exc)))
                    retry_at = now + RETRY_AFTER
                if time.monotonic() >= next_beat:
                    await self._beat()
                    next_beat = time.monotonic() + self.heartbeat_interval
                due = self.next_due()
                wake_at = min(due if due is not None else math.inf, retry_at)
                timeout = min(
                    max(wake_at - clock.time(), 0.0),
                    max(next_beat - time.monotonic(), 0.0),
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            with contextlib.suppress(Exception):
                scheduler_store.drop(self.app.broker, self.id)
            log.info("scheduler %s stopped", self.id)

    def stop(self) -> None:
        """Stop the loop (safe from any thread and from signal handlers)."""
        self._stopping = True
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)


def _count(s: Schedule, first: int, stop: int) -> int:
    """How many ticks of ``s`` lie in [first, stop)."""
    if s.every_ms is not None:
        return max(0, (stop - first + s.every_ms - 1) // s.every_ms)
    n, tick = 0, first
    while tick < stop and n < 10_000:
        n, tick = n + 1, s.next_after_ms(tick)
    return n
