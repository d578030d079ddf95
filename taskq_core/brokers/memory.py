"""The in-memory broker: the Redis broker's semantics in one process, for users' tests and
``taskq demo``. Each method below does under one lock what the Lua script of the same name
does in Redis; the shared contract suite holds both to the same behaviour.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import orjson

from .base import (
    RELEASE_ERROR_TYPES,
    DeadTask,
    Delivery,
    EnqueueItem,
    FetchResult,
    Lease,
    Outcome,
    QueueInfo,
    ReleaseMode,
    Renewal,
    Settings,
    TaskState,
    queue_stats,
)
from .memory_metrics import MemoryMetrics
from .memory_records import MemoryRecords, mono_ms
from .memory_state import QueueState
from .memory_workflows import MemoryWorkflows

T = TypeVar("T")


class MemoryBroker(MemoryRecords, MemoryMetrics, MemoryWorkflows):
    """Tasks held in this process. Thread-safe; usable from several event loops."""

    def __init__(self, settings: Settings | None = None, url: str = "memory://") -> None:
        self.url = url
        self.settings = settings or Settings()
        self._lock = threading.Lock()
        self._queues: dict[str, QueueState] = {}
        self._results: dict[tuple[str, str], tuple[bytes, int]] = {}  # -> (record, expiry)
        self._idem: dict[tuple[str, str], tuple[str, int]] = {}
        self._waiters: list[tuple[frozenset[str], asyncio.AbstractEventLoop, asyncio.Future[None]]]
        self._waiters = []
        self._counters: dict[str, dict[str, int]] = {}
        self._nudged: set[str] = set()
        self._done = threading.Condition(threading.Lock())
        self._generation = 0
        self._done_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._init_records()
        self._init_metrics()
        self._init_workflows()

    def __repr__(self) -> str:
        return f"MemoryBroker({self.url!r})"

    def _store(self, name: str) -> QueueState:
        store = self._queues.get(name)
        if store is None:
            store = self._queues[name] = QueueState()
            # a task whose flow-control gate is malformed is dead-lettered (as _lib.lua does)
            store.gates.dead_letter = lambda tid, reason, now_ms: self._dead_letter(
                store, tid, now_ms, ("BadGate", reason), 0
            )
        return store

    def _wake(self, name: str, store: QueueState) -> None:
        # hand the token straight to a sleeper if there is one, else keep it (as LPUSH wake)
        for i, (names, loop, fut) in enumerate(self._waiters):
            if name in names and not fut.done():
                del self._waiters[i]
                loop.call_soon_threadsafe(_resolve, fut)
                return
        store.wake = True

    def _result(self, queue: str, task_id: str) -> bytes | None:
        hit = self._results.get((queue, task_id))
        if hit is None:
            return None
        if hit[1] <= mono_ms():
            del self._results[(queue, task_id)]
            return None
        return hit[0]

    def _set_result(self, queue: str, task_id: str, record: bytes) -> None:
        # TTLs run on real time, as Redis's PX does, whatever clock the caller uses
        self._results[(queue, task_id)] = (record, mono_ms() + self.settings.result_ttl_ms)

    # -- producers (enqueue.lua)

    def enqueue(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]:
        out: list[str] = []
        with self._lock:
            now_ms = _now(now_ms)
            woken: set[str] = set()
            for item in items:
                store = self._store(item.queue)
                # idempotent on the id: a known task (its message, or its result once it
                # finished) is not added again
                if item.id in store.msg or self._result(item.queue, item.id) is not None:
                    out.append(item.id)
                    continue
                if item.idempotency_key is not None:
                    ikey = (item.queue, item.idempotency_key)
                    earlier = self._idem.get(ikey)
                    if earlier is not None and earlier[1] > mono_ms():
                        out.append(earlier[0])
                        continue
                    self._idem[ikey] = (item.id, mono_ms() + self.settings.idempotency_ttl_ms)
                if item.unique_key is not None:
                    holder = store.gates.claim_unique(
                        item.unique_key,
                        item.id,
                        item.unique_window_ms,
                        now_ms,
                        store.msg.__contains__,
                    )
                    if holder is not None:
                        out.append(holder)
                        continue
                store.gates.store(item.id, item.gate)
                store.msg[item.id] = item.body
                due = now_ms + item.delay_ms if item.delay_ms > 0 else item.due_ms
                if due > now_ms:
                    store.delayed.add(item.id, due)
                    store.state[item.id] = "scheduled"
                else:
                    store.ready.appendleft(item.id)
                    store.state[item.id] = "queued"
                store.incr("enqueued|" + item.task)
                out.append(item.id)
                woken.add(item.queue)
            for name in woken:
                self._wake(name, self._store(name))
        return out

    async def enqueue_async(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]:
        return self.enqueue(items, now_ms)

    # -- workers (fetch.lua, settle.lua, renew.lua, release.lua)

    def fetch(
        self,
        queues: Sequence[str],
        want: int,
        now_ms: int,
        outcomes: Sequence[Outcome] = (),
        stats: dict[str, dict[str, int]] | None = None,
        *,
        alone: bool = False,
    ) -> tuple[FetchResult, list[Outcome]]:
        stale = self.settle(outcomes, now_ms, stats) if (outcomes or stats) else []
        settings = self.settings
        deliveries: list[Delivery] = []
        next_due: int | None = None
        suspects = 0
        suspect = False
        with self._lock:
            now_ms = _now(now_ms)
            for name in queues:
                store = self._store(name)
                for tid in store.leased.upto(now_ms, 100):
                    store.leased.remove(tid)
                    store.gates.end(store, tid)
                    store.incr("lease_expired")
                    self._no_outcome(name, store, tid, now_ms, _LAPSE)
                for tid in store.delayed.upto(now_ms, 1000):
                    store.delayed.remove(tid)
                    store.ready.appendleft(tid)
                    store.state[tid] = "queued"
                first = store.delayed.first()
                if first is not None and (next_due is None or first[0] < next_due):
                    next_due = first[0]
            deadline = now_ms + settings.lease_ms
            # suspects: one, alone, to a caller that holds nothing (fetch.lua, part 3)
            for name in queues:
                store = self._store(name)
                while alone and want > 0 and not suspect and store.suspect:
                    tid = store.suspect.pop()
                    if tid not in store.msg:
                        self._body_missing(name, store, tid, now_ms)
                        continue
                    if store.gates.admit(store, tid, now_ms, suspect=True)[0] is None:
                        continue  # waits for a concurrency slot, still a suspect
                    deliveries.append(self._lease(name, store, tid, deadline))
                    suspect = True
                suspects += len(store.suspect)
            # flow control parks what its gate holds back (fetch.lua, part 4): not leased,
            # not an attempt; at most `examine` ids a call are looked at
            parked = False
            examine = want * 4 + 100
            for name in queues:
                if suspect:
                    break
                store = self._store(name)
                while len(deliveries) < want and store.ready and examine > 0:
                    tid = store.ready.pop()
                    examine -= 1
                    if tid not in store.msg:
                        self._body_missing(name, store, tid, now_ms)
                        continue
                    admitted, due = store.gates.admit(store, tid, now_ms)
                    if admitted is None:
                        parked = True
                        if due is not None and (next_due is None or due < next_due):
                            next_due = due
                        continue
                    deliveries.append(self._lease(name, store, tid, deadline))
            if len(deliveries) >= want or parked:
                for name in queues:
                    if self._store(name).ready:
                        self._wake(name, self._store(name))
                        break
        return FetchResult(deliveries, next_due, now_ms, suspects, suspect), stale

    def _lease(self, name: str, store: QueueState, tid: str, deadline: int) -> Delivery:
        fence = store.fence[tid] = store.fence.get(tid, 0) + 1
        store.unaccounted[tid] = store.unaccounted.get(tid, 0) + 1
        store.state[tid] = "running"
        store.leased.add(tid, deadline)
        return Delivery(name, tid, fence, store.msg[tid])

    def _no_outcome(
        self, name: str, store: QueueState, tid: str, now_ms: int, why: tuple[str, str]
    ) -> None:
        """The poison rule (``_lib.lua``'s ``no_outcome``): a delivery ended without an
        outcome. ``unaccounted`` counts here the deliveries without one."""
        kind, reason = why
        without = store.unaccounted.get(tid, 0)
        if without >= self.settings.max_deliveries:
            store.unaccounted.pop(tid, None)
            message = f"delivered {without} times without finishing; {reason}"
            self._dead_letter(store, tid, now_ms, (kind, message), without)
            return
        store.suspect.appendleft(tid)
        store.state[tid] = "queued"
        self._wake(name, store)

    def _body_missing(self, name: str, store: QueueState, tid: str, now_ms: int) -> None:
        store.incr("orphans")
        self._dead_letter(store, tid, now_ms, ("MissingMessage", "message body missing"), 0)

    def _dead_letter(
        self, store: QueueState, tid: str, now_ms: int, error: tuple[str, str], attempts: int
    ) -> None:
        kind, message = error
        store.gates.free_unique(tid)
        store.dead.add(tid, now_ms)
        store.state[tid] = "dead"
        store.error[tid] = orjson.dumps(
            {
                "status": "dead",
                "error": {"type": kind, "message": message, "traceback": ""},
                "attempts": attempts,
                "finished_at": now_ms,
            }
        )
        store.incr("dead")
        self._announce()
        if tid.startswith("wf_"):
            store.wfout.append(tid)

    async def fetch_async(
        self,
        queues: Sequence[str],
        want: int,
        now_ms: int,
        outcomes: Sequence[Outcome] = (),
        stats: dict[str, dict[str, int]] | None = None,
        *,
        alone: bool = False,
    ) -> tuple[FetchResult, list[Outcome]]:
        return self.fetch(queues, want, now_ms, outcomes, stats, alone=alone)

    async def wait_async(
        self, queues: Sequence[str], timeout: float, nudge: str | None = None
    ) -> bool:
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        names = frozenset([*queues, *([_NUDGE + nudge] if nudge is not None else [])])
        with self._lock:
            if nudge is not None and nudge in self._nudged:
                self._nudged.discard(nudge)
                return True
            for name in queues:
                store = self._store(name)
                if store.wake:
                    store.wake = False
                    return True
            fut: asyncio.Future[None] = loop.create_future()
            entry = (names, loop, fut)
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)

    async def wait_fetch_async(
        self,
        queues: Sequence[str],
        timeout: float,
        want: int,
        now_ms: int,
        nudge: str | None = None,
        *,
        alone: bool = False,
    ) -> tuple[bool, FetchResult]:
        """:meth:`wait_async`, then :meth:`fetch` (at ``now_ms``, or for 0 at the time the
        wait ended, as Redis does)."""
        woken = await self.wait_async(queues, timeout, nudge)
        return woken, self.fetch(queues, want, now_ms, alone=alone)[0]

    async def nudge_async(self, queues: Sequence[str], waiter: str) -> None:
        with self._lock:
            for i, (names, loop, fut) in enumerate(self._waiters):
                if _NUDGE + waiter in names and not fut.done():
                    del self._waiters[i]
                    loop.call_soon_threadsafe(_resolve, fut)
                    return
            self._nudged.add(waiter)

    def settle(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]:
        stale: list[Outcome] = []
        with self._lock:
            now_ms = _now(now_ms)
            woken: set[str] = set()
            for outcome in outcomes:
                store = self._store(outcome.queue)
                if store.fence.get(outcome.id) != outcome.fence or outcome.id not in store.leased:
                    stale.append(outcome)
                    store.incr("stale_acks")
                    continue
                store.leased.remove(outcome.id)
                store.unaccounted.pop(outcome.id, None)
                store.incr(outcome.kind)
                store.incr(f"{outcome.kind}|{outcome.task}")
                if store.gates.end(store, outcome.id):
                    woken.add(outcome.queue)
                if outcome.kind != "retry":
                    store.gates.free_unique(outcome.id)
                    store.progress.pop(outcome.id, None)
                    store.abort.pop(outcome.id, None)
                if outcome.kind in ("ok", "expired", "aborted"):
                    self._set_result(outcome.queue, outcome.id, outcome.record)
                    self._announce()
                    store.msg.pop(outcome.id, None)
                    store.state.pop(outcome.id, None)
                    store.fence.pop(outcome.id, None)
                    store.gates.forget(outcome.id)
                elif outcome.kind == "retry":
                    store.msg[outcome.id] = outcome.retry_body
                    if outcome.retry_delay_ms > 0:
                        store.delayed.add(outcome.id, now_ms + outcome.retry_delay_ms)
                        store.state[outcome.id] = "scheduled"
                    else:
                        store.ready.appendleft(outcome.id)
                        store.state[outcome.id] = "queued"
                    woken.add(outcome.queue)
                else:
                    store.dead.add(outcome.id, now_ms)
                    store.state[outcome.id] = outcome.kind
                    store.error[outcome.id] = outcome.record
                    self._set_result(outcome.queue, outcome.id, outcome.record)
                    self._announce()
                if outcome.step is not None:
                    self._wf_step_end(outcome, now_ms)
                elif outcome.kind != "retry" and outcome.id.startswith("wf_"):
                    store.wfout.append(outcome.id)
            for name, fields in (stats or {}).items():
                store = self._store(name)
                for key, value in fields.items():
                    store.incr(key, value)
            for name in woken:
                self._wake(name, self._store(name))
        return stale

    async def settle_async(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]:
        return self.settle(outcomes, now_ms, stats)

    def renew(
        self,
        leases: Sequence[Lease],
        now_ms: int,
        progress: Mapping[tuple[str, str], bytes] | None = None,
    ) -> Renewal:
        out = Renewal()
        with self._lock:
            now_ms = _now(now_ms)
            for lease in leases:
                store = self._store(lease.queue)
                if store.fence.get(lease.id) == lease.fence and lease.id in store.leased:
                    store.leased.add(lease.id, now_ms + self.settings.lease_ms)
                    reported = progress.get((lease.queue, lease.id)) if progress else None
                    if reported is not None:
                        store.progress[lease.id] = reported
                    if lease.id in store.abort:
                        out.aborting.append(lease)
                else:
                    out.lost.append(lease)
        return out

    def release(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int:
        kind = RELEASE_ERROR_TYPES.get(mode, "")
        if mode != "graceful" and not kind:
            raise ValueError(f"release mode must be graceful, crashed or unexplained: {mode!r}")
        now = _now(now_ms or 0)
        released = 0
        with self._lock:
            for lease in leases:
                store = self._store(lease.queue)
                if store.fence.get(lease.id) == lease.fence and store.leased.remove(lease.id):
                    store.gates.end(store, lease.id)
                    if kind:
                        self._no_outcome(lease.queue, store, lease.id, now, (kind, reason))
                        store.incr("released_counted")
                    else:
                        store.ready.append(lease.id)
                        store.state[lease.id] = "queued"
                        store.unaccounted[lease.id] = store.unaccounted.get(lease.id, 0) - 1
                        store.incr("released")
                        self._wake(lease.queue, store)
                    released += 1
        return released

    async def release_async(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int:
        return self.release(leases, mode, reason, now_ms)

    # -- handles and administration (cancel.lua, dead_retry.lua, dead_purge.lua)

    def get(self, queue: str, task_id: str) -> TaskState | None:
        with self._lock:
            store = self._store(queue)
            record = self._result(queue, task_id)
            state = store.state.get(task_id)
            if record is None and state is None:
                return None
            if record is None:
                record = store.error.get(task_id)
            return TaskState(
                task_id,
                queue,
                state,
                record,
                store.msg.get(task_id),
                store.fence.get(task_id, 0),
                store.progress.get(task_id),
                store.abort.get(task_id),
            )

    async def get_async(self, queue: str, task_id: str) -> TaskState | None:
        return self.get(queue, task_id)

    def cancel(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str:
        with self._lock:
            store = self._store(queue)
            state = store.state.get(task_id)
            if state == "running" and abort:
                if task_id not in store.abort:
                    store.abort[task_id] = _now(now_ms)
                    store.incr("abort_requested")
                return "aborting"
            if state == "queued":
                # state and lists agree under the lock: it waits in one of them
                if task_id in store.suspect:
                    store.suspect.remove(task_id)
                else:
                    store.ready.remove(task_id)
            elif state in ("scheduled", "throttled"):
                store.delayed.remove(task_id)
            elif state == "waiting":
                store.gates.unpark(task_id)
            else:
                return state or ""
            store.gates.free_unique(task_id)
            store.gates.forget(task_id)
            for per_task in (store.msg, store.state, store.fence, store.unaccounted):
                per_task.pop(task_id, None)
            self._set_result(queue, task_id, record)
            store.incr("cancelled")
            self._announce()
            if task_id.startswith("wf_"):
                store.wfout.append(task_id)
            return "cancelled"

    async def cancel_async(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str:
        return self.cancel(queue, task_id, record, abort=abort, now_ms=now_ms)

    def dead_list(self, queue: str, offset: int, limit: int) -> list[DeadTask]:
        with self._lock:
            store = self._store(queue)
            return [
                DeadTask(
                    tid,
                    queue,
                    at,
                    store.state.get(tid, "dead"),
                    store.msg.get(tid),
                    store.error.get(tid),
                )
                for tid, at in store.dead.page(offset, limit)
            ]

    def dead_retry(self, queue: str, ids: Sequence[str]) -> int:
        retried = 0
        with self._lock:
            store = self._store(queue)
            for tid in ids:
                # without a message body it cannot run: it stays (dead_retry.lua)
                if tid in store.msg and store.dead.remove(tid):
                    store.error.pop(tid, None)
                    self._results.pop((queue, tid), None)
                    store.ready.append(tid)
                    store.state[tid] = "queued"
                    retried += 1
            if retried:
                store.incr("dead_retried", retried)
                self._wake(queue, store)
        return retried

    def dead_purge(self, queue: str, ids: Sequence[str]) -> int:
        purged = 0
        with self._lock:
            store = self._store(queue)
            for tid in ids:
                if store.dead.remove(tid):
                    for per_task in (
                        store.msg,
                        store.state,
                        store.fence,
                        store.unaccounted,
                        store.error,
                    ):
                        per_task.pop(tid, None)
                    store.gates.forget(tid)
                    purged += 1
            if purged:
                store.incr("dead_purged", purged)
        return purged

    def queue_info(self, queues: Sequence[str]) -> list[QueueInfo]:
        from ..message import BadMessage, decode

        out = []
        with self._lock:
            for name in queues:
                store = self._store(name)
                oldest = None
                if store.ready:
                    body = store.msg.get(store.ready[-1])
                    if body is not None:
                        try:
                            oldest = decode(body, task_id=store.ready[-1], queue=name).queued_at
                        except BadMessage:
                            oldest = None
                out.append(
                    QueueInfo(
                        name,
                        len(store.ready) + len(store.suspect),
                        len(store.delayed),
                        len(store.leased),
                        len(store.dead),
                        oldest,
                        queue_stats(store.stats),
                        len(store.gates.waiting),
                    )
                )
        return out

    def _announce(self) -> None:
        # called with the lock held whenever a task reaches a final state
        with self._done:
            self._generation += 1
            self._done.notify_all()
        for loop, fut in self._done_waiters:
            loop.call_soon_threadsafe(_resolve, fut)
        self._done_waiters.clear()

    def wait_for(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], T | None]
    ) -> T | None:
        deadline = time.monotonic() + timeout
        while True:
            with self._done:
                seen = self._generation
            found = check()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with self._done:
                if self._generation == seen:
                    self._done.wait(min(remaining, 1.0))

    async def wait_for_async(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        deadline = time.monotonic() + timeout
        loop = asyncio.get_running_loop()
        while True:
            fut: asyncio.Future[None] = loop.create_future()
            with self._lock:
                self._done_waiters.append((loop, fut))
            found = await check()
            if found is not None:
                return found
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(fut, min(remaining, 1.0))

    def incr_counters(self, group: str, counts: dict[str, int]) -> None:
        with self._lock:
            mine = self._counters.setdefault(group, {})
            for counter, value in counts.items():
                mine[counter] = mine.get(counter, 0) + value

    async def incr_counters_async(self, group: str, counts: dict[str, int]) -> None:
        self.incr_counters(group, counts)

    def read_counters(self, group: str) -> dict[str, int]:
        with self._lock:
            return dict(self._counters.get(group, {}))

    def known_queues(self) -> list[str]:
        with self._lock:
            return sorted(self._queues)

    async def known_queues_async(self) -> list[str]:
        return self.known_queues()

    def ping(self) -> float:
        return 0.0

    def probe(self, timeout: float) -> MemoryBroker:
        return self

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


#: the reason of a lease that lapsed (fetch.lua)
_LAPSE = ("PoisonTask", "its worker died or froze each time")
_NUDGE = "\x00nudge:"  # waiter names cannot clash with queue names (no control characters)


def _now(now_ms: int) -> int:
    """The caller's time, or for 0 this process's clock: the in-memory broker's "server"
    clock, as Redis's TIME is for the Redis broker."""
    return now_ms if now_ms > 0 else int(time.time() * 1000)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
