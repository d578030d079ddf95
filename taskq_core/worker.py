"""The worker: one process, one asyncio loop.

``async def`` tasks run on the loop, plain functions on a bounded thread pool. The loop
leases as many tasks as it has free slots, and settles finished ones in the same round
trip, so under load a task costs a fraction of a round trip. A separate thread renews the
leases, so a task that blocks the loop or its thread does not lose its lease; a frozen or
killed process does, and its tasks go back to their queues.

Embedding: ``run()`` blocks and handles SIGTERM/SIGINT; ``await async_run()`` runs in the
caller's loop and leaves signals to the host unless ``handle_signals=True``; ``stop()``
stops fetching (running tasks get the grace period), ``await close()`` hands them back at
once; ``burst=True`` exits once there is nothing left to run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import os
import signal
import socket
import threading
import time
import traceback
import types
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson

from .brokers.base import Delivery, FetchResult, Lease, Outcome
from .clock import SystemClock, script_ms
from .context import current_trace, reset_trace, set_trace
from .errors import NotJSONSerializable, Retry, TaskTimeout
from .fetch_watch import FetchWatch, call_bound
from .leases import LeaseClock
from .message import BadMessage, Message, check_delivery, decode
from .middleware import Hooks, Middleware, TaskEvent, call_hooks, run_hooks, wrapped
from .observability.durability import explain_refused
from .redact import redact_text
from .signing import BadSignature
from .suspects import SuspectGate, internal_error_reason
from .threads import Interruptible, ThreadRunner
from .validation import JSON_LEAVES, check_json, check_queue_name

if TYPE_CHECKING:
    from .app import TaskQueue
    from .retry import RetryPolicy
    from .signing import Signer
    from .task import Task

log = logging.getLogger("taskq.worker")


def _wait(started_ms: int, m: Message) -> float:
    """Seconds from enqueue (or due time) to start; never negative (clock skew)."""
    waited = (started_ms - (m.due_at or m.enqueued_at)) / 1000
    return waited if waited > 0 else 0.0


def _verifier(app: TaskQueue) -> Callable[[dict[str, Any]], None] | None:
    """What checks each message's signature: None while signing is off."""
    signer = app.signer
    return signer.verify if signer is not None else None


def _wall_clock(app: TaskQueue) -> Callable[[], float]:
    """The app's wall clock as a function (``time.time`` itself for the system clock: two
    readings per task)."""
    clock = app.clock
    return time.time if type(clock) is SystemClock else clock.time


@dataclass(slots=True)
class _Running:
    lease: Lease
    #: the run: its asyncio.Task, or for a sync task settled from its thread, a future
    task: asyncio.Future[None] | None = None
    name: str = ""
    started: float = 0.0  # monotonic; 0 while leased ahead, not started yet
    started_ms: int = 0  # wall clock, for wait times
    message: Message | None = None
    #: a sync task's call in its thread, monotonic (0: not begun, not ended; async tasks
    #: leave them 0): written by the thread, read by the loop once the call is over
    began: float = 0.0
    ended: float = 0.0
    began_ms: int = 0  # the app's wall clock when its thread began it
    queued: float = 0.0  # seconds a sync task waited for a thread
    #: monotonic: the lease holds at least until then (leases.py); a buffered delivery
    #: past it does not start
    until: float = 0.0


@dataclass(slots=True)
class WorkerCounts:
    """What this worker process has done (heartbeats and tests read it)."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    stale: int = 0
    lost_leases: int = 0
    released: int = 0
    timed_out: int = 0
    fetch_stalls: int = 0  # fetch round trips abandoned by the watchdog


_NO_WRAP = contextlib.nullcontext()
_SHORT_TASK = 0.005  # seconds: tasks this short are leased ahead (prefetch=None)
_MOST_AHEAD = 16  # times concurrency
_COUNTER = {"ok": "succeeded", "retry": "retried", "failed": "failed", "dead": "dead"}


def _escape(text: str) -> str:
    """Text from a message, safe for one log line (no CR/LF or terminal escapes)."""
    return text[:200].encode("unicode_escape").decode("ascii")


def _error(exc: BaseException) -> dict[str, str]:
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return {
        "type": name,
        "message": redact_text(str(exc)),
        "traceback": redact_text("".join(traceback.format_exception(exc))),
    }


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
    ) -> None:
        ws = app.settings.worker
        self.app = app
        self.queues = [check_queue_name(q) for q in (queues or app.settings.worker_queues())]
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
        self._held: dict[tuple[str, str], _Running] = {}  # leased: running or buffered
        self._buffer: collections.deque[tuple[Delivery, _Running]] = collections.deque()
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

    def _nudge(self) -> None:
        """Wake the fetch loop from its idle wait (stop, or burst mode running dry)."""
        if self._idle_wait is not None and self._loop is not None and not self._nudging:
            self._nudging = True
            task = asyncio.ensure_future(self.app.broker.nudge_async(self.queues, self.id))
            task.add_done_callback(self._nudged)

    def _nudged(self, task: asyncio.Future[None]) -> None:
        self._nudging = False
        if not task.cancelled() and (exc := task.exception()) is not None:
            # the idle wait still ends by its own timeout
            log.warning("worker %s: could not wake the fetch loop: %s", self.id, exc)

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

    # -- the loops

    def _now_ms(self) -> int:
        """The app's wall clock: timestamps of records and metrics."""
        return int(self._wall() * 1000)

    def _broker_ms(self) -> int:
        """The ``now_ms`` of lease and due-time operations: 0, the broker's clock, unless the
        app's clock is a test's (``clock.script_ms``)."""
        return script_ms(self.app.clock)

    def _take_outbox(self) -> tuple[list[Outcome], dict[str, dict[str, int]] | None]:
        if self._hooks.before_settle:
            run_hooks(self._hooks.before_settle, self)
        out, stats = self._outbox, self._stats
        self._outbox, self._stats = [], {}
        return out, (stats or None)

    def _restore_outbox(self, out: list[Outcome], stats: dict[str, dict[str, int]] | None) -> None:
        # a round trip failed: nothing settled may be dropped, so it goes back for the next one
        self._outbox[:0] = out
        for q, fields in (stats or {}).items():
            mine = self._stats.setdefault(q, {})
            for k, v in fields.items():
                mine[k] = mine.get(k, 0) + v

    def _ahead(self) -> int:
        """How many tasks to lease beyond the free slots (see ``WorkerSettings.prefetch``)."""
        if self.prefetch is not None:
            return self.prefetch
        if self._runtime >= _SHORT_TASK:
            return 0
        # about _SHORT_TASK of work per slot: a task waits no longer than that behind others
        per_slot = int(_SHORT_TASK / max(self._runtime, 1e-6))
        return self.concurrency * min(_MOST_AHEAD, max(1, per_slot))

    async def _fetch_loop(self) -> None:
        broker = self.app.broker
        watch = self.fetch_watch
        assert self._slot_freed is not None
        assert self._loop is not None
        backoff = 0.05
        while not self._stopping:
            if self._suspects.holding_back(self._held, bool(self._held)):
                if not await self._hold_back():
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                continue
            want = self.concurrency + self._ahead() - len(self._held)
            if want <= 0:
                self._slot_freed.clear()
                self._start_buffered()
                if self.concurrency + self._ahead() - len(self._held) <= 0:
                    await self._slot_freed.wait()
                continue
            outcomes, stats = self._take_outbox()
            sent = time.monotonic()
            fetching = asyncio.ensure_future(
                broker.fetch_async(
                    self.queues, want, self._broker_ms(), outcomes, stats, alone=not self._held
                )
            )
            if self._buffer:
                # the tasks leased last time run while Redis works on this round trip: the
                # fetch sends its request before this callback runs (the loop is FIFO)
                self._loop.call_soon(self._start_buffered)
            try:
                result, stale = await watch.watched(fetching, broker)
            except Exception as exc:
                self._restore_outbox(outcomes, stats)
                log.warning(
                    "worker %s: broker error while fetching: %s", self.id, redact_text(str(exc))
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.05
            self._note_stale(stale)
            self._note_suspects(result)
            for d in result.deliveries:
                self._lease_taken(d, sent)
            if result.deliveries or self._outbox or self._suspects.waiting:
                continue
            if self.burst and not self._held:
                return
            timeout = self._longest_wait
            if result.next_due_ms is not None:
                # both by the broker's clock: a worker whose clock is off neither spins nor
                # oversleeps
                timeout = min(timeout, max(0.001, (result.next_due_ms - result.now_ms) / 1000))
            if self._stopping:
                break  # stop() came during the fetch: it had no idle wait to cancel
            # block until a wake token (or a nudge, or the timeout), and lease in the same
            # round trip: Redis runs the fetch the moment the wait returns
            want = self.concurrency + self._ahead() - len(self._held)
            if want <= 0:
                continue  # slots filled up meanwhile (the run time average moved)
            self._blocking = True
            sent = time.monotonic()
            self._idle_wait = asyncio.ensure_future(
                broker.wait_fetch_async(
                    self.queues, timeout, want, self._broker_ms(), self.id, alone=not self._held
                )
            )
            try:
                _, result = await watch.watched(self._idle_wait, broker)
            except Exception as exc:
                log.warning(
                    "worker %s: broker error while idle: %s", self.id, redact_text(str(exc))
                )
                await asyncio.sleep(backoff)
                continue
            finally:
                self._blocking = False
                self._idle_wait = None
            self._note_suspects(result)
            for d in result.deliveries:
                self._lease_taken(d, sent)
            if not self._stopping:
                self._start_buffered()  # at once: nothing else is waiting for the loop

    def _note_suspects(self, result: FetchResult) -> None:
        d = self._suspects.note(result)
        if d is not None:
            log.info(
                "worker %s: running suspect task %s alone (its last delivery ended without "
                "an outcome)",
                self.id,
                d.id,
            )

    async def _hold_back(self) -> bool:
        """Suspects wait, or one runs here: lease nothing new. Settle what finished and
        learn whether suspects still wait (a fetch of nothing: one round trip), then wait
        for a task to end. False after a broker error."""
        assert self._slot_freed is not None
        self._slot_freed.clear()
        self._start_buffered()  # what this worker holds runs to its end
        outcomes, stats = self._take_outbox()
        broker = self.app.broker
        try:
            # watched as the other fetches are: a round trip that never ends would hold the
            # loop here for good
            result, stale = await self.fetch_watch.watched(
                asyncio.ensure_future(
                    broker.fetch_async(self.queues, 0, self._broker_ms(), outcomes, stats)
                ),
                broker,
            )
        except Exception as exc:
            self._restore_outbox(outcomes, stats)
            log.warning(
                "worker %s: broker error while fetching: %s", self.id, redact_text(str(exc))
            )
            return False
        self._note_stale(stale)
        self._suspects.waiting = result.suspects
        if self._suspects.holding_back(self._held, bool(self._held)) and not self._outbox:
            # a task's end, or now and then (another worker may have taken the suspects)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slot_freed.wait(), self._longest_wait)
        return True

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every)
            if self.fetch_watch.overdue():
                self.counts.fetch_stalls += 1
            call_hooks(self.middleware, "tick", self)

    def add_stat(self, queue: str, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter of ``queue``; written with the next settle round trip."""
        fields = self._stats.setdefault(queue, {})
        fields[name] = fields.get(name, 0) + n

    @property
    def busy(self) -> int:
        """Slots in use."""
        return len(self._held) - len(self._buffer)

    def lease(self, queue: str, task_id: str) -> Lease | None:
        """The lease under which this worker runs a task (for the supervisor's bookkeeping)."""
        r = self._held.get((queue, task_id))
        return r.lease if r is not None else None

    def current(self) -> list[dict[str, Any]]:
        """The tasks running now: id, queue, task name, seconds running."""
        now = time.monotonic()
        return [
            {
                "id": r.lease.id,
                "queue": r.lease.queue,
                "task": r.name,
                "running_for": round(now - r.started, 3),
            }
            for r in self._held.copy().values()
            if r.started
        ]

    async def _settle_loop(self) -> None:
        """Settles finished tasks while the fetch loop sleeps (otherwise it does it)."""
        assert self._outbox_ready is not None
        while not self._settler_exit:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            if self._blocking or self._stopping:
                await self._flush()

    async def _flush(self) -> None:
        outcomes, stats = self._take_outbox()
        if not outcomes and not stats:
            return
        try:
            stale = await self.app.broker.settle_async(outcomes, self._broker_ms(), stats)
        except Exception as exc:
            self._restore_outbox(outcomes, stats)
            log.warning(
                "worker %s: broker error while settling: %s", self.id, redact_text(str(exc))
            )
            return
        self._note_stale(stale)

    async def _drain(self) -> None:
        """After the fetch loop ends: hand back what never started, wait out the grace
        period, hand back the rest."""
        if self._buffer:
            waiting = [r for _, r in self._buffer]
            self._buffer.clear()
            await self._hand_back(waiting, "leased but not started")
        running = [r.task for r in self._held.values() if r.task is not None]
        if running and self.grace_period > 0:
            self._drain_wait = asyncio.ensure_future(
                asyncio.wait(running, timeout=self.grace_period)
            )
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_wait
            self._drain_wait = None
        leftover = [r for r in self._held.values() if r.task is None or not r.task.done()]
        if leftover:
            await self._hand_back(leftover, "running")
            for r in leftover:
                if r.task is not None:
                    r.task.cancel()
            # cancelled async tasks must not settle; sync ones are refused by their fence
            await asyncio.sleep(0)
        for _ in range(3):
            await self._flush()
            if not self._outbox:
                break
            await asyncio.sleep(0.2)

    async def _hand_back(self, runs: list[_Running], what: str) -> None:
        leases = [r.lease for r in runs]
        for lease in leases:
            self._held.pop((lease.queue, lease.id), None)
        try:
            n = await self.app.broker.release_async(leases)
            self.counts.released += n
            log.info("worker %s: handed back %d %s task(s)", self.id, n, what)
        except Exception as exc:
            log.error(
                "worker %s: could not hand back %d task(s), their leases will lapse: %s",
                self.id,
                len(leases),
                redact_text(str(exc)),
            )

    def _note_stale(self, stale: list[Outcome]) -> None:
        if stale:
            self.counts.stale += len(stale)
            # why: a lapsed lease (delivered again), or Redis lost its data (the task is gone)
            explain_refused(self, stale)

    def _renew_loop(self) -> None:
        """Renews leases from a thread of its own, whatever the loop or the tasks are doing."""
        broker = self.app.broker
        while not self._renew_stop.wait(self.renew_every):
            try:
                # only leases still held after the call count as lost (a task settled
                # meanwhile is refused too)
                lost = self._lease_clock.renew(broker, self._held, self._broker_ms())
            except Exception as exc:
                log.warning("worker %s: could not renew leases: %s", self.id, redact_text(str(exc)))
                continue
            if lost:
                self.counts.lost_leases += len(lost)
                log.warning("worker %s: lost the lease of %d task(s)", self.id, len(lost))

    # -- one task

    def _lease_taken(self, d: Delivery, sent: float) -> None:
        r = _Running(d, until=self._lease_clock.until(sent))
        self._held[(d.queue, d.id)] = r
        self._buffer.append((d, r))

    def _start_buffered(self) -> None:
        """Start leased tasks in the free slots (as many as are free now: a task that ends
        at once schedules the next call rather than recursing)."""
        self._start_pending = False
        buffer = self._buffer
        n = min(len(buffer), self.concurrency - (len(self._held) - len(buffer)))
        now = time.monotonic()
        lapsed: list[_Running] = []
        while n > 0 and buffer:
            d, r = buffer.popleft()
            if now > r.until:
                lapsed.append(r)  # another worker may have run it: must not start here
                continue
            self._start(d, r)
            n -= 1
        if lapsed:
            self._drop_lapsed(lapsed)

    def _drop_lapsed(self, lapsed: list[_Running]) -> None:
        """Forget leased-ahead deliveries whose lease lapsed before they could start (the
        broker re-delivers each, counted as a delivery without an outcome)."""
        for r in lapsed:
            self._held.pop((r.lease.queue, r.lease.id), None)
        self.counts.lost_leases += len(lapsed)
        log.warning(
            "worker %s: lost the lease of %d task(s) leased ahead before they could start "
            "(was this process frozen or starved?); not starting them",
            self.id,
            len(lapsed),
        )
        assert self._slot_freed is not None
        self._slot_freed.set()

    def _start(self, d: Delivery, r: _Running) -> None:
        assert self._loop is not None
        r.started = time.monotonic()
        r.started_ms = self._now_ms()
        self.counts.started += 1
        # run it at once up to its first suspension (3.12's eager tasks, by hand for 3.11):
        # a task that never waits costs no asyncio.Task, and one that does gets one then,
        # in the context its first step ran in
        coro = self._execute(d, r)
        ctx = contextvars.copy_context()
        try:
            waiting = ctx.run(coro.send, None)
        except StopIteration:
            return
        except Exception as exc:
            self._loop.create_task(self._internal_error(d, r, exc), context=ctx)
            return
        r.task = self._loop.create_task(self._resumed(d, r, coro, waiting), context=ctx)

    async def _resumed(
        self, d: Delivery, r: _Running, coro: Coroutine[Any, Any, None], waiting: Any
    ) -> None:
        """The rest of a task's run, after its first suspension, in an asyncio.Task."""
        try:
            await _go_on(coro, waiting)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._internal_error(d, r, exc)

    async def _internal_error(self, d: Delivery, r: _Running, exc: BaseException) -> None:
        # a bug of ours (or of a middleware) must not hold the slot or lose the task; nor
        # may it hand the same message back without bound: the hand-back counts as a
        # delivery without an outcome (the poison rule), so after max_deliveries the task
        # is dead-lettered with this error
        log.error(
            "worker %s: internal error around task %s; handing it back (counted as a delivery)",
            self.id,
            d.id,
            exc_info=exc,  # passed: this may run outside the except block
        )
        key = (d.queue, d.id)
        if self._held.get(key) is r:
            try:
                await self.app.broker.release_async(
                    [r.lease], "unexplained", internal_error_reason(exc), self._broker_ms()
                )
            except Exception as err:
                log.error(
                    "worker %s: could not hand back task %s, its lease will lapse: %s",
                    self.id,
                    d.id,
                    redact_text(str(err)),
                )
            # held until handed back: a burst worker must not see itself empty and close
            self._held.pop(key, None)
            assert self._slot_freed is not None
            self._slot_freed.set()
            if self.burst and not self._held:
                self._nudge()

    def _finish(
        self,
        r: _Running,
        kind: str,
        record: dict[str, Any],
        retry_delay_ms: int = 0,
        retry_body: bytes = b"",
        *,
        error: dict[str, str] | None = None,
        timed_out: bool = False,
        runtime: float | None = None,
    ) -> None:
        lease = r.lease
        if runtime is None:
            runtime = (r.ended or time.monotonic()) - r.started
        # the average for prefetching is of the time a task holds its slot, until the loop
        # sees it end (a sync task's wait for a thread and hand-back included)
        held = runtime if not r.began else time.monotonic() - r.started + r.queued
        self._runtime += (held - self._runtime) * 0.1
        if self._hooks.after_task and r.message is not None:
            m = r.message
            event = TaskEvent(
                m,
                kind,
                runtime,
                _wait(r.started_ms, m),
                error,
                timed_out,
                record.get("result") if kind == "ok" else None,
            )
            run_hooks(self._hooks.after_task, self, event)
        self._held.pop((lease.queue, lease.id), None)
        try:
            data = orjson.dumps(record)
        except TypeError as exc:  # pragma: no cover - results are checked before
            data = orjson.dumps({**record, "result": None, "error": _error(exc)})
        self._outbox.append(
            Outcome(
                lease.queue,
                lease.id,
                lease.fence,
                kind,  # type: ignore[arg-type]
                r.name,
                data,
                retry_delay_ms,
                retry_body,
            )
        )
        if kind == "ok":
            self.counts.succeeded += 1
        else:
            counter = _COUNTER[kind]
            setattr(self.counts, counter, getattr(self.counts, counter) + 1)
        assert self._slot_freed is not None
        assert self._outbox_ready is not None
        self._slot_freed.set()
        self._outbox_ready.set()
        if self._buffer and not self._start_pending:
            self._start_pending = True
            assert self._loop is not None
            self._loop.call_soon(self._start_buffered)
        if self.burst and not self._held:
            self._nudge()

    async def _execute(self, d: Delivery, r: _Running) -> None:
        now_ms = r.started_ms
        base = {"worker": self.id, "started_at": now_ms}
        try:
            msg = decode(d.body, self.payload_limit, self._verify)
            check_delivery(msg, d.id, d.queue)
        except BadMessage as exc:
            # refused on its first delivery, before any of it is used: nothing of a message
            # that fails a check runs, and it cannot come back
            signature = isinstance(exc, BadSignature)
            if signature:
                self.add_stat(d.queue, "bad_signature")
            self._finish(
                r,
                "dead",
                {
                    **base,
                    "status": "dead",
                    "finished_at": now_ms,
                    "reason": "signature" if signature else "bad_message",
                    "error": {"type": type(exc).__name__, "message": str(exc), "traceback": ""},
                },
            )
            log.warning("task %s dead-lettered: %s", _escape(d.id), _escape(str(exc)))
            return
        r.name = msg.task
        # kept in the final record: the message itself is deleted once the task settles
        base["enqueued_at"] = msg.enqueued_at
        task = self.app.registry.get(msg.task)
        if task is None:
            self._finish(
                r,
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
                "task %s dead-lettered: no task named %s is registered", d.id, _escape(msg.task)
            )
            return
        r.message = msg
        if self._hooks.before_task:
            run_hooks(self._hooks.before_task, self, msg)
        timeout = msg.timeout if msg.timeout is not None else task.timeout
        if not task.is_async and timeout is None:
            self._start_sync(d, r, task, msg, base)
            return
        # the run's context is a fresh copy (see _start): most messages carry no trace
        # into one that has none, and need no context change
        token = set_trace(msg.trace) if msg.trace or current_trace() else None
        try:
            if not task.is_async:
                assert timeout is not None  # without one, _start_sync took it
                try:
                    value = await self._run_sync(task, msg, timeout, r)
                finally:
                    _began_in_thread(r, base)
            elif self._hooks.wrap:
                with wrapped(self._hooks.wrap, msg):
                    if timeout is None:
                        value = await task.fn(*msg.args, **msg.kwargs)
                    else:
                        value = await self._run_async(task, msg, timeout)
            elif timeout is None:
                value = await task.fn(*msg.args, **msg.kwargs)
            else:
                value = await self._run_async(task, msg, timeout)
        except asyncio.CancelledError:
            raise  # the worker is shutting down: the lease is handed back, not settled
        except BaseException as exc:
            self._complete(r, task, msg, base, ok=False, value=exc)
            return
        finally:
            if token is not None:
                reset_trace(token)
        self._complete(r, task, msg, base, ok=True, value=value)

    async def _run_async(self, task: Task[Any, Any], msg: Message, timeout: float | None) -> Any:
        coro = task.fn(*msg.args, **msg.kwargs)
        if timeout is None:
            return await coro
        try:
            return await asyncio.wait_for(coro, timeout)
        except TimeoutError:
            raise TaskTimeout(
                f"task {task.name} ran past its soft time limit of {timeout:g}s"
            ) from None

    def _complete(
        self,
        r: _Running,
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
            self._failed(r, task, msg, value, base)
            return
        # the end, read once (a sync task's in its thread): the run time from it, the
        # finish time as start plus run time
        runtime = (r.ended or time.monotonic()) - r.started
        self._finish(
            r,
            "ok",
            {
                **base,
                "status": "succeeded",
                "task": msg.task,
                "result": value,
                "attempts": msg.attempt + 1,
                "finished_at": r.started_ms + int(runtime * 1000),
            },
            runtime=runtime,
        )

    def _start_sync(
        self, d: Delivery, r: _Running, task: Task[Any, Any], msg: Message, base: dict[str, Any]
    ) -> None:
        """Run a sync task without a soft time limit in a thread, and settle it from the
        thread's completion: no coroutine waits for it, so it costs no ``asyncio.Task``.
        ``r.task`` is a future that stands for the run (drain waits on it, a hand-back
        cancels it, and a cancelled run is not settled)."""
        assert self._threads is not None
        assert self._loop is not None
        running: asyncio.Future[None] = self._loop.create_future()
        r.task = running

        def done(ok: bool, value: Any) -> None:
            if running.done():  # handed back meanwhile: not ours to settle
                return
            running.set_result(None)
            _began_in_thread(r, base)
            try:
                self._complete(r, task, msg, base, ok=ok, value=value)
            except Exception as exc:
                self._loop.create_task(self._internal_error(d, r, exc))  # type: ignore[union-attr]

        self._threads.call(self._in_thread(task, msg, r), done)

    def _in_thread(
        self, task: Task[Any, Any], msg: Message, r: _Running, call: Interruptible | None = None
    ) -> Callable[[], Any]:
        """The call a thread makes for a sync task: in its trace context, inside the
        middleware's ``wrap`` contexts (through ``call`` when it may be interrupted),
        noting in ``r`` when it began and ended."""
        trace, wrap, now_ms = msg.trace, self._hooks.wrap, self._now_ms
        fn, args, kwargs = task.fn, msg.args, msg.kwargs

        def run() -> Any:
            token = set_trace(trace)
            r.began = time.monotonic()
            # wall time from the app's clock, as every other (a test's ManualClock too)
            r.began_ms = now_ms()
            try:
                with wrapped(wrap, msg) if wrap else _NO_WRAP:
                    if call is not None:
                        return call.run(fn, args, kwargs)
                    return fn(*args, **kwargs)
            finally:
                r.ended = time.monotonic()
                reset_trace(token)

        return run

    async def _run_sync(
        self, task: Task[Any, Any], msg: Message, timeout: float, r: _Running
    ) -> Any:
        """Run a sync task with a soft time limit: past it, raise inside its thread."""
        assert self._threads is not None
        call = Interruptible()
        fut = self._threads.submit(self._in_thread(task, msg, r, call))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            pass
        call.interrupt(TaskTimeout)
        self.counts.timed_out += 1
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(fut), 1.0)
        if not fut.done():
            log.warning(
                "worker %s: sync task %s did not stop after its soft time limit (blocked "
                "in C code?); its thread stays busy until it returns",
                self.id,
                msg.id,
            )
        raise TaskTimeout(f"task {task.name} ran past its soft time limit of {timeout:g}s")

    def _failed(
        self,
        r: _Running,
        task: Task[Any, Any],
        msg: Message,
        exc: BaseException,
        base: dict[str, Any],
    ) -> None:
        f = failure_outcome(
            task.policy,
            task.name,
            msg,
            exc,
            now_ms=self._now_ms(),
            base=base,
            signer=self.app.signer,
        )
        timed_out = isinstance(exc, TaskTimeout)
        if f.kind == "retry":
            self._finish(
                r, "retry", {}, f.retry_delay_ms, f.retry_body, error=f.error, timed_out=timed_out
            )
            log.info(
                "task %s (%s) failed with %s, retry %d/%d in %.2fs",
                msg.id,
                msg.task,
                f.error["type"],
                msg.attempt,
                task.policy.max_for(exc, msg.max_retries),
                f.delay,
            )
            return
        self._finish(r, "failed", f.record, error=f.error, timed_out=timed_out)
        log.info(
            "task %s (%s) failed after %d attempt(s): %s: %s",
            msg.id,
            msg.task,
            msg.attempt + 1,
            f.error["type"],
            f.error["message"][:200],
        )


def _began_in_thread(r: _Running, base: dict[str, Any]) -> None:
    """A sync task started when its thread began the call: the wait for a free thread is
    queue wait, not run time (``sync_threads`` may be fewer than the slots)."""
    if r.began:
        r.queued = r.began - r.started
        r.started_ms = r.began_ms
        r.started = r.began
        base["started_at"] = r.started_ms


@dataclass(slots=True)
class Failure:
    """How a failed execution is settled: retried later, or failed for good."""

    kind: Literal["retry", "failed"]
    record: dict[str, Any]  # the error record of a final failure (empty for a retry)
    error: dict[str, str]
    retry_delay_ms: int = 0  # due this long after the broker's now
    retry_body: bytes = b""  # the message to run again, its attempt counted
    delay: float | None = None


def failure_outcome(
    policy: RetryPolicy,
    task_name: str,
    msg: Message,
    exc: BaseException,
    *,
    now_ms: int,
    base: dict[str, Any],
    signer: Signer | None = None,
) -> Failure:
    """Apply ``policy`` to an execution of ``msg`` that raised ``exc``.

    Shared by the worker and by the supervisor, which settles a task whose process it
    killed at its hard time limit. ``msg`` is updated for a retry (attempt, due time,
    last error) and signed again by ``signer``; ``base`` starts the error record of a final
    failure.
    """
    if isinstance(exc, NotJSONSerializable):
        exc = NotJSONSerializable(f"task {task_name} returned a value JSON cannot carry: {exc}")
    err = _error(exc)
    delay = policy.next_delay(exc, msg.attempt, msg.max_retries)
    if delay is not None:
        msg.attempt += 1
        # the broker makes the due time (its now + the delay: one clock for due times and
        # leases); the message's due_at is this process's reading, for wait-time metrics
        delay_ms = int(delay * 1000)
        msg.due_at = now_ms + delay_ms
        headers = dict(msg.headers or {})
        headers["last_error"] = {"type": err["type"], "message": err["message"][:1000]}
        msg.headers = headers
        return Failure("retry", {}, err, delay_ms, msg.encode(signer=signer), delay)
    if isinstance(exc, Retry):
        limit = policy.max_for(exc, msg.max_retries)
        err["message"] = (
            f"retry requested but max_retries ({limit}) is exhausted: " + err["message"]
        )
    record = {
        **base,
        "status": "failed",
        "task": msg.task,
        "error": err,
        "attempts": msg.attempt + 1,
        "finished_at": now_ms,
    }
    return Failure("failed", record, err)
