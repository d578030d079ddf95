"""The in-memory broker's workflows: the record logic of ``workflow/advance.py`` on this
broker's queues, advanced under the broker's lock in the same step that settles a step's
task. Mixed into :class:`~taskq_core.brokers.memory.MemoryBroker`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..workflow import advance
from ..workflow.advance import Advance, Record
from ..workflow.plan import parse_task_id
from .memory_records import mono_ms

if TYPE_CHECKING:
    from ..workflow.builder import StartRequest
    from .base import Outcome
    from .memory_state import QueueState


class _Run(Advance):
    """One advance of one workflow on the in-memory broker's queues (its lock held)."""

    def __init__(self, broker: MemoryWorkflows, wid: str, rec: Record, now: int) -> None:
        super().__init__(wid, rec, now)
        self.b = broker

    def put(self, queue: str, tid: str, body: bytes, gate: bytes, name: str) -> None:
        store = self.b._store(queue)
        store.msg[tid] = body
        store.gates.store(tid, gate)
        store.ready.appendleft(tid)
        store.state[tid] = "queued"
        store.incr(f"enqueued|{name}")
        self.b._wake(queue, store)

    def unqueue(self, queue: str, ids: list[str]) -> None:
        store = self.b._store(queue)
        gone = 0
        for tid in ids:
            if tid in store.leased:
                if tid not in store.abort:
                    store.abort[tid] = self.now
                    store.incr("abort_requested")
                continue
            state = store.state.get(tid)
            if state in ("scheduled", "throttled"):
                store.delayed.remove(tid)
            elif state == "waiting":
                store.gates.unpark(tid)
            if tid in store.suspect:
                store.suspect.remove(tid)
            if tid in store.ready:
                store.ready.remove(tid)
            if store.msg.pop(tid, None) is not None:
                gone += 1
            for per_task in (store.state, store.fence, store.unaccounted):
                per_task.pop(tid, None)
            store.gates.forget(tid)
        if gone:
            store.incr("cancelled", gone)

    def finished(self, ttl_ms: int) -> None:
        self.b._wf_expire(self.w, ttl_ms)
        self.b._announce()

    def count(self, queue: str, name: str) -> None:
        self.b._store(queue).incr(name)

    def keep(self) -> None:
        self.b._workflows[self.w] = (self.rec, None)


class MemoryWorkflows:
    """The workflow methods of the in-memory broker (its lock held, as in its settle)."""

    _lock: threading.Lock

    if TYPE_CHECKING:

        def _store(self, name: str) -> QueueState: ...
        def _wake(self, name: str, store: QueueState) -> None: ...
        def _announce(self) -> None: ...

    def _init_workflows(self) -> None:
        self._workflows: dict[str, tuple[Record, int | None]] = {}

    def _wf(self, wid: str) -> Record | None:
        found = self._workflows.get(wid)
        if found is None:
            return None
        if found[1] is not None and found[1] <= mono_ms():
            del self._workflows[wid]
            return None
        return found[0]

    def _wf_expire(self, wid: str, ttl_ms: int) -> None:
        found = self._workflows.get(wid)
        if found is not None:
            self._workflows[wid] = (found[0], mono_ms() + ttl_ms)

    def _wf_step_end(self, outcome: Outcome, now_ms: int) -> None:
        """Called by settle, lock held, for an accepted outcome of a step."""
        step = outcome.step
        assert step is not None
        rec = self._wf(step.workflow)
        if rec is not None:
            _Run(self, step.workflow, rec, now_ms).end(step.step, step.status, step.payload)

    def wf_start(self, req: StartRequest, now_ms: int) -> bool:
        from .memory import _now

        with self._lock:
            if self._wf(req.id) is not None:
                return False
            rec: Record = dict(req.fields)
            self._workflows[req.id] = (rec, None)
            advance.start(_Run(self, req.id, rec, _now(now_ms)), req.roots)
            return True

    async def wf_start_async(self, req: StartRequest, now_ms: int) -> bool:
        return self.wf_start(req, now_ms)

    def wf_get(self, workflow: str) -> Record | None:
        with self._lock:
            rec = self._wf(workflow)
            return dict(rec) if rec is not None else None

    async def wf_get_async(self, workflow: str) -> Record | None:
        return self.wf_get(workflow)

    def wf_cancel(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        from .memory import _now

        with self._lock:
            rec = self._wf(workflow)
            if rec is None:
                return ""
            return advance.cancel(_Run(self, workflow, rec, _now(now_ms)))

    async def wf_cancel_async(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        return self.wf_cancel(workflow, queues, now_ms)

    def wf_retry(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        from .memory import _now

        with self._lock:
            rec = self._wf(workflow)
            if rec is None:
                return -2
            return advance.retry(_Run(self, workflow, rec, _now(now_ms)), steps)

    def wf_drain(self, queues: Sequence[str], now_ms: int) -> int:
        """Advance the workflows of steps that ended outside a settle (wf_end.lua)."""
        from .memory import _now

        n = 0
        with self._lock:
            for queue in queues:
                store = self._store(queue)
                taken, store.wfout = store.wfout[:100], store.wfout[100:]
                for tid in taken:
                    parsed = parse_task_id(tid)
                    rec = self._wf(parsed[0]) if parsed else None
                    if parsed is None or rec is None:
                        continue
                    wid, step, _ = parsed
                    run = _Run(self, wid, rec, _now(now_ms))
                    state = store.state.get(tid)
                    if advance.end_unsettled(run, tid, step, state, store.error.get(tid)):
                        n += 1
        return n

    async def wf_drain_async(self, queues: Sequence[str], now_ms: int) -> int:
        return self.wf_drain(queues, now_ms)

    async def wf_retry_async(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        return self.wf_retry(workflow, queues, steps, now_ms)


__all__ = ["MemoryWorkflows"]
