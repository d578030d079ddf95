"""The worker: one process, one asyncio loop (the ``Worker`` class and its lifecycle).

``async def`` tasks run on the loop, plain functions on a bounded thread pool. The loop
leases as many tasks as it has free slots, and settles finished ones in the same round
trip, so under load a task costs a fraction of a round trip. A separate thread renews the
leases, so a task that blocks the loop or its thread does not lose its lease; a frozen or
killed process does, and its tasks go back to their queues.

Embedding: ``run()`` blocks and handles SIGTERM/SIGINT; ``await async_run()`` runs in the
caller's loop and leaves signals to the host unless ``handle_signals=True``; ``stop()``
stops fetching (running tasks get the grace period), ``await close()`` hands them back at
once; ``burst=True`` exits once there is nothing left to run.

This module holds construction, run/stop/close and signals; the steps of a task live in
the neighbouring modules, bound onto ``Worker`` as methods (plain functions taking the
worker, so a method call costs what it did):

- ``fetching.py``: the fetch loop, leasing ahead, holding back for suspects, starting
  leased tasks in free slots;
- ``running.py``: executing one delivery (decode, check, async tasks with time limits);
  ``sync_tasks.py``: sync tasks in threads;
- ``outcomes.py``: an exception becomes a retry (delay from ``retry.py``) or a failure;
- ``outbox.py``: the outcomes and stats waiting for the next round trip;
- ``settling.py``: the settle loop, flushing, draining and handing back at the end;
- ``renewal.py``: the lease renewal thread and the tick loop;
- ``records.py``: ``WorkerCounts``, ``Running`` (one per held task).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..brokers.base import Delivery, FetchResult, Lease, Outcome
from ..capabilities import check_capabilities, served_queues
from ..clock import SystemClock, script_ms
from ..fetch_watch import FetchWatch, call_bound
from ..leases import LeaseClock
from ..middleware import Hooks, Middleware, call_hooks
from ..suspects import SuspectGate
from ..threads import ThreadRunner
from ..validation import check_queue_name
from . import aborting, fetching, outbox, outcomes, renewal, running, settling, sync_tasks
from .records import Running, WorkerCounts

if TYPE_CHECKING:
    from ..app import TaskQueue

log = logging.getLogger("taskq.worker")


def _verifier(app: TaskQueue) -> Callable[[dict[str, Any]], None] | None:
    """What checks each message's signature: None while signing is off."""
    signer = app.signer
    return signer.verify if signer is not None else None


def _wall_clock(app: TaskQueue) -> Callable[[], float]:
    """The app's wall clock as a function (``time.time`` itself for the system clock: two
    readings per task)."""
    clock = app.clock
    return time.time if type(clock) is SystemClock else clock.time


class Worker:
    """Runs tasks from the given queues, highest priority first."""

    def __init__(
        self,
        app: TaskQueue,
        *,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        sync_threads: int | None = None,
        burst: bool = False,
        handle_signals: bool | None = None,
        grace_period: float | None = None,
        middleware: list[Middleware] | None = None,
        capabilities: Iterable[str] | str | None = None,
    ) -> None:
        ws = app.settings.worker
        self.app = app
        #: the queues it was told to serve, highest priority first
        self.base_queues = [
            check_queue_name(queue) for queue in (queues or app.settings.worker_queues())
        ]
        #: what it has: it also serves the routed queues of tasks that require some of it
        #: (taskq_core/capabilities.py); the broker's queue set is read again on each tick
        self.capabilities = check_capabilities(
            ws.capabilities if capabilities is None else capabilities
        )
        #: the queues it fetches from, in priority order: its base queues with the routed
        #: queues it can serve (those its app's tasks declare until the broker is read)
        self.queues = served_queues(
            self.base_queues,
            self.capabilities,
            (t.routed_queue for t in app.registry.values()),
        )
        self.concurrency = concurrency or ws.concurrency
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.sync_threads = sync_threads or ws.sync_threads or self.concurrency
        self.burst = burst
        self.handle_signals = handle_signals
        self.grace_period = ws.grace_period if grace_period is None else grace_period
        self.renew_every = ws.renew_every
        # the longest idle wait: ``idle_wait`` (a worker that has slept for seconds is slow
        # to wake on a virtual machine), and never past the point where the leases of the
        # fetch that follows, shorter by the wait, could lapse before the first renewal
        self._longest_wait = min(
            ws.idle_wait, self.renew_every, max(0.1, (ws.lease_seconds - ws.renew_every) / 2)
        )
        #: the fetch loop's watchdog (see fetch_watch.py)
        self.fetch_watch = FetchWatch(
            FetchWatch.bound_for(
                self._longest_wait, call_bound(app.broker, app.settings.broker.socket_timeout)
            )
        )
        self.payload_limit = app.settings.max_payload_bytes
        self.id = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.counts = WorkerCounts()
        self.middleware: list[Middleware] = [*app.middleware, *(middleware or [])]
        self._hooks = Hooks(self.middleware)
        self.started_at = 0.0
        self._held: dict[tuple[str, str], Running] = {}  # leased: running or buffered
        self._buffer: collections.deque[tuple[Delivery, Running]] = collections.deque()
        self._start_pending = False
        self.prefetch = ws.prefetch
        # mean run time (moving average, seconds); starts long, so a fresh worker leases
        # no more than its free slots until its tasks prove short
        self._runtime = 1.0
        self._outbox: list[Outcome] = []
        self._stats: dict[str, dict[str, int]] = {}
        self._suspects = SuspectGate()
        self._lease_clock = LeaseClock(ws.lease_seconds)
        self._stopping = False
        self._signals = 0
        self._slot_freed: asyncio.Event | None = None
        self._outbox_ready: asyncio.Event | None = None
        self._idle_wait: asyncio.Future[tuple[bool, FetchResult]] | None = None
        self._nudging = False
        #: the settle loop settled outcomes (or an internal error handed a task back) since
        #: the fetch loop's last fetch began: what they released (a workflow's next steps,
        #: the handed-back task) was not seen by that fetch
        self._settled_aside = False
        self._settling: asyncio.Future[None] | None = None
        #: the workflow outboxes' drain in flight (renewal.drain_workflows)
        self._draining: asyncio.Task[int] | None = None
        #: the read of the broker's queue set in flight (renewal.find_routed_queues)
        self._routing: asyncio.Task[list[str]] | None = None
        self._blocking = False
        self._settler_exit = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: ThreadRunner | None = None
        self._renew_stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.stragglers = 0  # sync tasks still running in threads when the worker returned
        self._wall = _wall_clock(app)
        self._verify = _verifier(app)

    def __repr__(self) -> str:
        return f"Worker({self.id}, queues={self.queues}, concurrency={self.concurrency})"

    # -- running

    def run(self) -> None:
        """Run until stopped (SIGTERM/SIGINT, :meth:`stop`, or burst mode running dry)."""
        asyncio.run(self._run_owned())

    async def _run_owned(self) -> None:
        # this loop is ours: handle signals (unless told not to) and close the broker's
        # connections of it when done
        if self.handle_signals is None:
            self.handle_signals = True
        try:
            await self.async_run()
        finally:
            await self.app.broker.aclose()

    async def async_run(self) -> None:
        """Run in the current event loop until stopped."""
        self._loop = loop = asyncio.get_running_loop()
        self._slot_freed = asyncio.Event()
        self._outbox_ready = asyncio.Event()
        self._settler_exit = False
        self._threads = ThreadRunner(loop, self.sync_threads, "taskq-sync")
        self.app.load_imports()
        if self.capabilities:  # the routed queues it can serve, before the first fetch
            renewal.serve(self, await self.app.broker.known_queues_async())
        self._hooks = Hooks(self.middleware)  # the list may have changed since __init__
        self._wall = _wall_clock(self.app)  # the app's clock may have changed too
        self._verify = _verifier(self.app)  # and its signing keys
        self.started_at = time.time()
        installed: list[signal.Signals] = []
        if self.handle_signals:  # None (embedded in a host's loop) means no
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(sig, self._on_signal, sig)
                    installed.append(sig)
        self._renew_stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="taskq-lease", daemon=True)
        self._renewer.start()
        settler = asyncio.create_task(self._settle_loop())
        ticker = asyncio.create_task(self._tick_loop())
        call_hooks(self.middleware, "worker_started", self)
        log.info(
            "worker %s started: queues=%s concurrency=%d", self.id, self.queues, self.concurrency
        )
        try:
            await self._fetch_loop()
            await self._drain()
        finally:
            call_hooks(self.middleware, "worker_stopping", self)
            # the settler is asked to finish rather than cancelled: cancelling it in the
            # middle of a Redis call could lose an outcome (and redis-py may swallow it)
            self._settler_exit = True
            self._outbox_ready.set()
            await settler
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if self._draining is not None:  # a drain of the workflow outboxes: let it end
                await asyncio.wait({self._draining}, timeout=5)
            if self._routing is not None:  # a read of the queue set: let it end (a call
                # cancelled mid-way can leave its connection open past the loop)
                await asyncio.wait({self._routing}, timeout=5)
            self._renew_stop.set()
            self._renewer.join(timeout=5)
            for sig in installed:
                loop.remove_signal_handler(sig)
            # threads still inside sync tasks cannot be killed; do not wait for them
            self.stragglers = self._threads.running
            self._threads.shutdown()
            log.info("worker %s stopped", self.id)

    def stop(self) -> None:
        """Stop fetching; running tasks get the grace period. Safe from the loop's thread."""
        self._stopping = True
        self._nudge()
        if self._slot_freed is not None:
            self._slot_freed.set()

    async def close(self) -> None:
        """Stop and hand back at once whatever is still running."""
        self.grace_period = 0
        self.stop()

    def _on_signal(self, sig: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info(
                "worker %s: %s, finishing running tasks (grace %.1fs)",
                self.id,
                signal.Signals(sig).name,
                self.grace_period,
            )
            self.stop()
        else:
            log.info("worker %s: second signal, handing back running tasks now", self.id)
            self.grace_period = 0
            self.stop()
            if self._drain_wait is not None:
                self._drain_wait.cancel()

    _drain_wait: asyncio.Task[Any] | None = None

    def _now_ms(self) -> int:
        """The app's wall clock: timestamps of records and metrics."""
        return int(self._wall() * 1000)

    def _broker_ms(self) -> int:
        """The ``now_ms`` of lease and due-time operations: 0, the broker's clock, unless the
        app's clock is a test's (``clock.script_ms``)."""
        return script_ms(self.app.clock)

    @property
    def busy(self) -> int:
        """Slots in use."""
        return len(self._held) - len(self._buffer)

    def lease(self, queue: str, task_id: str) -> Lease | None:
        """The lease under which this worker runs a task (for the supervisor's bookkeeping)."""
        run = self._held.get((queue, task_id))
        return run.lease if run is not None else None

    def current(self) -> list[dict[str, Any]]:
        """The tasks running now: id, queue, task name, seconds running."""
        now = time.monotonic()
        return [
            {
                "id": run.lease.id,
                "queue": run.lease.queue,
                "task": run.name,
                "running_for": round(now - run.started, 3),
            }
            for run in self._held.copy().values()
            if run.started
        ]

    # -- the steps, bound as methods (see the module docstring for where each lives)

    # outbox.py: outcomes and stats waiting for the next round trip
    _take_outbox = outbox.take_outbox
    _restore_outbox = outbox.restore_outbox
    add_stat = outbox.add_stat
    _finish = outbox.finish
    _note_stale = outbox.note_stale
    # fetching.py: leasing tasks and starting them in free slots
    _ahead = fetching.ahead
    _nudge = fetching.nudge
    _nudged = fetching.nudged
    _fetch_loop = fetching.fetch_loop
    _note_suspects = fetching.note_suspects
    _hold_back = fetching.hold_back
    _lease_taken = fetching.lease_taken
    _start_buffered = fetching.start_buffered
    _drop_lapsed = fetching.drop_lapsed
    # running.py, sync_tasks.py: executing one delivery
    _on_abort = aborting.on_abort
    _aborted = aborting.aborted
    _start = running.start
    _resumed = running.resumed
    _execute = running.execute
    _run_async = running.run_async
    _complete = running.complete
    _start_sync = sync_tasks.start_sync
    _in_thread = sync_tasks.in_thread
    _run_sync = sync_tasks.run_sync
    # outcomes.py: an exception becomes a retry or a failure
    _failed = outcomes.failed
    # settling.py: settling, draining and handing back
    _settle_loop = settling.settle_loop
    _flush = settling.flush
    _drain = settling.drain
    _hand_back = settling.hand_back
    _internal_error = settling.internal_error
    # renewal.py: the lease renewal thread, the tick loop
    _renew_loop = renewal.renew_loop
    _tick_loop = renewal.tick_loop
