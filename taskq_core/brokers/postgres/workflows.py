"""The PostgreSQL broker's workflows (schema version 5, ``sql/0005_workflows.sql``): the record
logic of ``workflow/advance.py``, run in one transaction with the workflow's row locked.

Each operation is a generator of :class:`~.calls.Call` objects (it receives each one's
result), so that the blocking and the asyncio pools run the very same steps in a
transaction (:meth:`PostgresWorkflows.transaction`). A step's end reaches its workflow
through the ``wf_outbox`` table, written with the end itself; :meth:`wf_drain` applies each
entry once. Mixed into :class:`~.broker.PostgresBroker`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...workflow import advance
from ...workflow.advance import Advance, Record
from ...workflow.plan import parse_task_id
from ..base import EnqueueItem, Outcome
from .calls import Call, Calls, _first, _none

if TYPE_CHECKING:
    from ...workflow.builder import StartRequest

T = TypeVar("T")
Steps = Generator[Call[Any], Any, T]
#: outbox entries one drain call applies, each in its own transaction
DRAIN_BATCH = 100


class _Run(Advance):
    """One advance of one workflow: what it does to the queues, as calls to run after it."""

    def __init__(self, calls: Calls, wid: str, rec: Record, now: int) -> None:
        super().__init__(wid, rec, now)
        self.c = calls
        self.actions: list[Call[Any]] = []
        self.puts: list[EnqueueItem] = []

    def put(self, queue: str, tid: str, body: bytes, gate: bytes, name: str) -> None:
        self.puts.append(EnqueueItem(queue, tid, name, body, gate=gate))

    def unqueue(self, queue: str, ids: list[str]) -> None:
        self.actions.append(
            Call(
                f"SELECT {self.c.s}.wf_unqueue(%s, %s, %s::text[], %s)",
                (self.c.ns, queue, ids, self.now),
                _none,
            )
        )

    def finished(self, ttl_ms: int) -> None:
        s = self.c.s
        self.actions.append(
            Call(
                f"UPDATE {s}.workflows SET expires_ms = {s}.clock_ms() + %s "
                "WHERE ns = %s AND id = %s",
                (ttl_ms, self.c.ns, self.w),
                _none,
            )
        )
        # WorkflowHandle.result waits on the namespace's 'done' channel (broker.wait_for)
        self.actions.append(
            Call(
                f"SELECT pg_notify({s}.channel(%s, 'done'), %s)",
                (self.c.ns, "wf:" + self.w),
                _none,
            )
        )

    def count(self, queue: str, name: str) -> None:
        self.actions.append(self.c.bump(queue, {name: 1}))

    def keep(self) -> None:
        self.actions.append(
            Call(
                f"UPDATE {self.c.s}.workflows SET expires_ms = NULL WHERE ns = %s AND id = %s",
                (self.c.ns, self.w),
                _none,
            )
        )

    def written(self) -> Steps[None]:
        """The queue actions (the steps released: one enqueue, a chord's ten thousand
        members too), then the record's changed fields written back."""
        if self.puts:
            yield self.c.enqueue(self.puts, 0)
        # a loop, not ``yield from``: each call's result is sent back in, which a list's
        # iterator does not accept
        for call in self.actions:  # noqa: UP028
            yield call
        keep = sorted(k for k in self.changed if k in self.rec)
        gone = sorted(k for k in self.changed if k not in self.rec)
        s, ns = self.c.s, self.c.ns
        if keep:
            yield Call(
                f"INSERT INTO {s}.wf_fields (ns, wid, field, value) "
                "SELECT %s, %s, f, v FROM unnest(%s::text[], %s::bytea[]) AS u(f, v) "
                "ON CONFLICT (ns, wid, field) DO UPDATE SET value = excluded.value",
                (ns, self.w, keep, [self.rec[k] for k in keep]),
                _none,
            )
        if gone:
            yield Call(
                f"DELETE FROM {s}.wf_fields WHERE ns = %s AND wid = %s AND field = ANY (%s)",
                (ns, self.w, gone),
                _none,
            )


def _now(calls: Calls, now_ms: int) -> Steps[int]:
    if now_ms > 0:
        return now_ms
    found: int = yield Call(f"SELECT {calls.s}.clock_ms()", (), _first)
    return found


def _locked(calls: Calls, wid: str) -> Steps[Record | None]:
    """The record of workflow ``wid``, its row locked until the transaction ends; None when
    there is none (or it has expired)."""
    s = calls.s
    row = yield Call(
        f"SELECT 1 FROM {s}.workflows WHERE ns = %s AND id = %s "
        f"AND (expires_ms IS NULL OR expires_ms > {s}.clock_ms()) FOR UPDATE",
        (calls.ns, wid),
        lambda r: r,
    )
    if row is None:
        return None
    rows = yield Call(
        f"SELECT field, value FROM {s}.wf_fields WHERE ns = %s AND wid = %s",
        (calls.ns, wid),
        list,
        rows=True,
    )
    return {field: bytes(value) for field, value in rows}


def start(calls: Calls, req: StartRequest, now_ms: int) -> Steps[bool]:
    s = calls.s
    now = yield from _now(calls, now_ms)
    # a record past its TTL that fold has not removed yet does not keep the id taken
    yield Call(
        f"DELETE FROM {s}.workflows WHERE ns = %s AND id = %s AND expires_ms <= {s}.clock_ms()",
        (calls.ns, req.id),
        _none,
    )
    made = yield Call(
        f"INSERT INTO {s}.workflows (ns, id) VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING 1",
        (calls.ns, req.id),
        lambda r: r is not None,
    )
    if not made:
        return False
    rec: Record = dict(req.fields)
    run = _Run(calls, req.id, rec, now)
    run.changed.update(rec)  # every field is written
    advance.start(run, req.roots)
    yield from run.written()
    return True


def cancel(calls: Calls, wid: str, now_ms: int) -> Steps[str]:
    now = yield from _now(calls, now_ms)
    rec = yield from _locked(calls, wid)
    if rec is None:
        return ""
    run = _Run(calls, wid, rec, now)
    answer = advance.cancel(run)
    yield from run.written()
    return answer


def retry(
    calls: Calls, wid: str, steps: Sequence[tuple[int, int, bytes]], now_ms: int
) -> Steps[int]:
    now = yield from _now(calls, now_ms)
    rec = yield from _locked(calls, wid)
    if rec is None:
        return -2
    run = _Run(calls, wid, rec, now)
    n = advance.retry(run, steps)
    yield from run.written()
    return n


def drain_one(calls: Calls, now_ms: int) -> Steps[bool]:
    """Apply the oldest outbox entry no other drain holds: False when there is none."""
    s, ns = calls.s, calls.ns
    entry = yield Call(
        f"SELECT n, queue, tid, status, payload FROM {s}.wf_outbox WHERE ns = %s "
        "ORDER BY n LIMIT 1 FOR UPDATE SKIP LOCKED",
        (ns,),
        lambda r: r,
    )
    if entry is None:
        return False
    n, queue, tid, status, payload = entry
    yield Call(f"DELETE FROM {s}.wf_outbox WHERE ns = %s AND n = %s", (ns, n), _none)
    parsed = parse_task_id(tid)
    if parsed is None:
        return True
    wid, step, _ = parsed
    now = yield from _now(calls, now_ms)
    rec = yield from _locked(calls, wid)
    if rec is None:
        return True  # its workflow is gone (expired, or never stored)
    run = _Run(calls, wid, rec, now)
    if status is not None:
        # the outcome its worker settled: applied when it is this run's task (a workflow
        # retried since has its step under a new task id)
        if advance.is_current(run, tid, step):
            run.end(step, status, bytes(payload))
    else:
        state, error = yield Call(
            f"SELECT t.state, t.error FROM (SELECT 1) one LEFT JOIN {s}.tasks t "
            "ON t.id = %s AND t.queue = %s AND t.ns = %s",
            (tid, queue, ns),
            lambda r: r,
        )
        advance.end_unsettled(run, tid, step, state, bytes(error) if error else None)
    yield from run.written()
    return True


def outbox_rows(outcomes: Sequence[Outcome]) -> tuple[list[Any], ...] | None:
    """The outbox entries of a settle (position, queue, id, status, payload): the final
    outcomes of workflow steps' tasks; None when there are none."""
    rows = [
        (n, o.queue, o.id, o.step.status if o.step else None, o.step.payload if o.step else None)
        for n, o in enumerate(outcomes, start=1)
        if o.kind != "retry" and o.id.startswith("wf_")
    ]
    if not rows:
        return None
    return tuple(list(col) for col in zip(*rows, strict=True))


class PostgresWorkflows:
    """The workflow methods; ``calls`` and the two transaction runners are the broker's."""

    calls: Calls

    if TYPE_CHECKING:

        def transaction(self, steps: Steps[T]) -> T: ...
        async def transaction_async(self, steps: Steps[T]) -> T: ...
        def run(self, call: Call[T], connection: Any = None) -> T: ...
        async def run_async(self, call: Call[T], connection: Any = None) -> T: ...

    def wf_start(self, req: StartRequest, now_ms: int) -> bool:
        """Store a workflow and release its first steps; False if the id exists already."""
        return self.transaction(start(self.calls, req, now_ms))

    async def wf_start_async(self, req: StartRequest, now_ms: int) -> bool:
        return await self.transaction_async(start(self.calls, req, now_ms))

    def _get(self, workflow: str) -> Call[Record | None]:
        s = self.calls.s
        return Call(
            f"SELECT f.field, f.value FROM {s}.workflows w JOIN {s}.wf_fields f "
            "ON f.ns = w.ns AND f.wid = w.id WHERE w.ns = %s AND w.id = %s "
            f"AND (w.expires_ms IS NULL OR w.expires_ms > {s}.clock_ms())",
            (self.calls.ns, workflow),
            lambda rows: {f: bytes(v) for f, v in rows} or None,
            rows=True,
        )

    def wf_get(self, workflow: str) -> Record | None:
        """A workflow's record (its fields: workflow/plan.py), or None."""
        return self.run(self._get(workflow))

    async def wf_get_async(self, workflow: str) -> Record | None:
        return await self.run_async(self._get(workflow))

    def wf_cancel(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        return self.transaction(cancel(self.calls, workflow, now_ms))

    async def wf_cancel_async(self, workflow: str, queues: Sequence[str], now_ms: int) -> str:
        return await self.transaction_async(cancel(self.calls, workflow, now_ms))

    def wf_retry(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        return self.transaction(retry(self.calls, workflow, steps, now_ms))

    async def wf_retry_async(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int:
        return await self.transaction_async(retry(self.calls, workflow, steps, now_ms))

    def wf_drain(self, queues: Sequence[str], now_ms: int) -> int:
        """Apply the namespace's outbox entries (steps' ends not applied yet), at most
        DRAIN_BATCH a call, each in its own transaction; how many."""
        n = 0
        while n < DRAIN_BATCH and self.transaction(drain_one(self.calls, now_ms)):
            n += 1
        return n

    async def wf_drain_async(self, queues: Sequence[str], now_ms: int) -> int:
        n = 0
        while n < DRAIN_BATCH and await self.transaction_async(drain_one(self.calls, now_ms)):
            n += 1
        return n


def run_steps(steps: Steps[T], execute: Callable[[Call[Any]], Any]) -> T:
    """Run ``steps`` with ``execute`` (a call's result for a call)."""
    try:
        call = next(steps)
        while True:
            call = steps.send(execute(call))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


async def run_steps_async(steps: Steps[T], execute: Callable[[Call[Any]], Awaitable[Any]]) -> T:
    try:
        call = next(steps)
        while True:
            call = steps.send(await execute(call))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


__all__ = ["PostgresWorkflows", "outbox_rows", "run_steps", "run_steps_async"]
