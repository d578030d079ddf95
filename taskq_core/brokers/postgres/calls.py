"""The PostgreSQL broker's operations, each described once as a :class:`Call` (a statement,
its parameters and how to read its one row) and run by the blocking or the asyncio pool:
the sync and async forms share every line of their logic (as ``redis_plans.py`` does for
Redis). Most calls are one function of ``sql/`` and one round trip."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from psycopg.types.json import Jsonb

from ...flow.memory import checked
from .. import base
from ..base import (
    RELEASE_ERROR_TYPES,
    DeadTask,
    Delivery,
    EnqueueItem,
    FetchResult,
    Lease,
    Outcome,
    ReleaseMode,
    Renewal,
    TaskState,
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One statement and what its rows mean: ``read`` gets every row fetched (``rows``
    True) or the first row (None when there is none)."""

    sql: str
    params: tuple[Any, ...]
    read: Callable[[Any], T]
    rows: bool = False


def _none(_: Any) -> None:
    return None


def _first(row: Any) -> Any:
    return row[0] if row is not None else None


class Calls:
    """The calls of one schema and namespace (the app's ``key_prefix``)."""

    def __init__(self, schema: str, ns: str, settings: base.Settings) -> None:
        self.s = schema
        self.ns = ns
        self.settings = settings

    # -- producers

    def enqueue(self, items: Sequence[EnqueueItem], now_ms: int) -> Call[list[str]]:
        modes = [_unique_mode(item) for item in items]
        return Call(
            f"SELECT {self.s}.enqueue(%s, %s, %s::text[], %s::text[], %s::text[], "
            "%s::bytea[], %s::bigint[], %s::bigint[], %s::text[], %s, %s::text[], "
            '%s::"char"[], %s::bigint[], %s::jsonb[])',
            (
                self.ns,
                now_ms,
                [i.queue for i in items],
                [i.id for i in items],
                [i.task for i in items],
                [i.body for i in items],
                [i.due_ms for i in items],
                [i.delay_ms for i in items],
                [i.idempotency_key for i in items],
                self.settings.idempotency_ttl_ms,
                [i.unique_key if m else None for i, m in zip(items, modes, strict=True)],
                modes,
                [i.unique_window_ms for i in items],
                [_gate(i) for i in items],
            ),
            _first,
        )

    # -- workers

    def fetch(
        self, queues: Sequence[str], want: int, now_ms: int, alone: bool
    ) -> Call[FetchResult]:
        def read(row: Any) -> FetchResult:
            q, ids, fences, bodies, next_due, now, suspects, suspect = row
            return FetchResult(
                [
                    Delivery(qn, tid, fence, bytes(body))
                    for qn, tid, fence, body in zip(q, ids, fences, bodies, strict=True)
                ],
                next_due,
                now,
                suspects,
                suspect,
            )

        return Call(
            f"SELECT * FROM {self.s}.fetch(%s, %s::text[], %s, %s, %s, %s, %s)",
            (
                self.ns,
                list(queues),
                want,
                now_ms,
                alone,
                self.settings.lease_ms,
                self.settings.max_deliveries,
            ),
            read,
        )

    def _settle_params(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None,
    ) -> tuple[Any, ...]:
        sq, sn, sv = [], [], []
        for queue, fields in (stats or {}).items():
            for name, value in fields.items():
                sq.append(queue)
                sn.append(name)
                sv.append(value)
        return (
            self.ns,
            now_ms,
            [o.queue for o in outcomes],
            [o.id for o in outcomes],
            [o.fence for o in outcomes],
            [o.kind for o in outcomes],
            [o.task for o in outcomes],
            [o.record for o in outcomes],
            [o.retry_delay_ms for o in outcomes],
            [o.retry_body for o in outcomes],
            self.settings.result_ttl_ms,
            sq,
            sn,
            sv,
        )

    _SETTLE_ARGS = (
        "%s, %s, %s::text[], %s::text[], %s::int[], %s::text[], %s::text[], %s::bytea[], "
        "%s::bigint[], %s::bytea[], %s, %s::text[], %s::text[], %s::bigint[]"
    )

    def settle(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None,
    ) -> Call[list[Outcome]]:
        def read(row: Any) -> list[Outcome]:
            return [outcomes[i - 1] for i in row[0]]

        return self._with_outbox(
            Call(
                f"SELECT {self.s}.settle({self._SETTLE_ARGS}) AS o_stale",
                self._settle_params(outcomes, now_ms, stats),
                read,
            ),
            outcomes,
        )

    def settle_fetch(
        self,
        *,
        outcomes: Sequence[Outcome],
        stats: dict[str, dict[str, int]] | None,
        queues: Sequence[str],
        want: int,
        now_ms: int,
        alone: bool,
    ) -> Call[tuple[FetchResult, list[Outcome]]]:
        """:meth:`settle`, then :meth:`fetch`, in one transaction and one round trip."""
        fetched = self.fetch(queues, want, now_ms, alone)

        def read(row: Any) -> tuple[FetchResult, list[Outcome]]:
            return fetched.read(row[1:]), [outcomes[i - 1] for i in row[0]]

        # (a batch with workflow steps is settled on its own, then fetched: broker.fetch)
        return Call(
            f"SELECT * FROM {self.s}.settle_fetch({self._SETTLE_ARGS}, %s::text[], %s, %s, %s, %s)",
            (
                *self._settle_params(outcomes, now_ms, stats),
                *(fetched.params[i] for i in (1, 2, 4, 5, 6)),  # all but ns and now
            ),
            read,
        )

    def _with_outbox(self, call: Call[T], outcomes: Sequence[Outcome]) -> Call[T]:
        """``call`` (a settle, its column ``o_stale``), with the final outcomes of
        workflow steps written to ``wf_outbox`` in the same statement, those whose lease
        was still held (sql/0005_workflows.sql): the workflow advances from there."""
        from .workflows import outbox_rows

        rows = outbox_rows(outcomes)
        if rows is None:
            return call
        return Call(
            f"WITH s AS ({call.sql}), o AS ("
            f"INSERT INTO {self.s}.wf_outbox (ns, queue, tid, status, payload) "
            "SELECT %s, x.q, x.id, x.st, x.pl FROM s, unnest(%s::int[], %s::text[], "
            "%s::text[], %s::text[], %s::bytea[]) AS x(n, q, id, st, pl) "
            "WHERE x.n <> ALL (s.o_stale)) SELECT * FROM s",
            (*call.params, self.ns, *rows),
            call.read,
        )

    def renew(
        self,
        leases: Sequence[Lease],
        now_ms: int,
        progress: Mapping[tuple[str, str], bytes] | None,
    ) -> Call[Renewal]:
        def read(row: Any) -> Renewal:
            lost, aborting = row
            return Renewal([leases[i - 1] for i in lost], [leases[i - 1] for i in aborting])

        return Call(
            f"SELECT * FROM {self.s}.renew(%s, %s, %s, %s::text[], %s::text[], %s::int[], "
            "%s::bytea[])",
            (
                self.ns,
                now_ms,
                self.settings.lease_ms,
                [lease.queue for lease in leases],
                [lease.id for lease in leases],
                [lease.fence for lease in leases],
                [(progress or {}).get((lease.queue, lease.id)) for lease in leases],
            ),
            read,
        )

    def release(
        self, leases: Sequence[Lease], mode: ReleaseMode, reason: str, now_ms: int | None
    ) -> Call[int]:
        kind = RELEASE_ERROR_TYPES.get(mode, "")
        if mode != "graceful" and not kind:
            raise ValueError(f"release mode must be graceful, crashed or unexplained: {mode!r}")
        return Call(
            f"SELECT {self.s}.release(%s, %s, %s, %s, %s, %s::text[], %s::text[], %s::int[])",
            (
                self.ns,
                now_ms or 0,
                kind,
                reason,
                self.settings.max_deliveries,
                [lease.queue for lease in leases],
                [lease.id for lease in leases],
                [lease.fence for lease in leases],
            ),
            _first,
        )

    # -- handles and administration

    def get(self, queue: str, task_id: str) -> Call[TaskState | None]:
        def read(row: Any) -> TaskState | None:
            state, body, fence, error, progress, abort_ms, record = row
            if state is None and record is None:
                return None
            return TaskState(
                task_id,
                queue,
                state,
                _b(record if record is not None else error),
                _b(body),
                fence or 0,
                _b(progress),
                abort_ms,
            )

        # one row whether the task and its result exist or not: a full join of the two
        return Call(
            f"SELECT t.state, t.body, t.fence, t.error, t.progress, t.abort_ms, r.record "
            f"FROM (SELECT 1) one "
            f"LEFT JOIN {self.s}.tasks t ON t.ns = %s AND t.queue = %s AND t.id = %s "
            f"LEFT JOIN {self.s}.results r ON r.ns = %s AND r.queue = %s AND r.id = %s "
            f"AND r.expires_ms > {self.s}.clock_ms()",
            (self.ns, queue, task_id, self.ns, queue, task_id),
            read,
        )

    def cancel(
        self, queue: str, task_id: str, record: bytes, abort: bool, now_ms: int
    ) -> Call[str]:
        return Call(
            f"SELECT {self.s}.cancel(%s, %s, %s, %s, %s, %s, %s)",
            (self.ns, queue, task_id, record, abort, now_ms, self.settings.result_ttl_ms),
            _first,
        )

    def dead_list(self, queue: str, offset: int, limit: int) -> Call[list[DeadTask]]:
        def read(rows: list[Any]) -> list[DeadTask]:
            return [
                DeadTask(tid, queue, at, state, _b(body), _b(error))
                for tid, at, state, body, error in rows
            ]

        return Call(
            f"SELECT id, at_ms, state, body, error FROM {self.s}.tasks "
            "WHERE ns = %s AND queue = %s AND state IN ('failed', 'dead') "
            "ORDER BY at_ms, id OFFSET %s LIMIT %s",
            (self.ns, queue, offset, limit),
            read,
            rows=True,
        )

    def dead_retry(self, queue: str, ids: Sequence[str]) -> Call[int]:
        return Call(
            f"SELECT {self.s}.dead_retry(%s, %s, %s::text[])", (self.ns, queue, list(ids)), _first
        )

    def dead_purge(self, queue: str, ids: Sequence[str]) -> Call[int]:
        return Call(
            f"SELECT {self.s}.dead_purge(%s, %s, %s::text[])", (self.ns, queue, list(ids)), _first
        )

    def queue_counts(self, queues: Sequence[str]) -> Call[list[Any]]:
        """Per queue: ready, delayed (scheduled or held back by a rate limit), leased,
        dead, waiting (for a concurrency slot), the oldest ready task's body and id, and its
        stats (names and values)."""
        return Call(
            f"SELECT q, "
            f"(SELECT count(*) FROM {self.s}.tasks WHERE ns = %s AND queue = q "
            f" AND state = 'queued'), "
            f"(SELECT count(*) FROM {self.s}.tasks WHERE ns = %s AND queue = q "
            f" AND state IN ('scheduled', 'throttled')), "
            f"(SELECT count(*) FROM {self.s}.tasks WHERE ns = %s AND queue = q "
            f" AND state = 'running'), "
            f"(SELECT count(*) FROM {self.s}.tasks WHERE ns = %s AND queue = q "
            f" AND state IN ('failed', 'dead')), "
            f"(SELECT count(*) FROM {self.s}.tasks WHERE ns = %s AND queue = q "
            f" AND state = 'waiting'), "
            f"(SELECT array[id::bytea, body] FROM {self.s}.tasks WHERE ns = %s AND queue = q "
            f" AND state = 'queued' AND NOT suspect ORDER BY seq LIMIT 1), "
            f"c.o_names, c.o_values "
            f"FROM unnest(%s::text[]) WITH ORDINALITY AS u(q, n), "
            f"LATERAL {self.s}.counts(%s, q) c ORDER BY n",
            (*([self.ns] * 6), list(queues), self.ns),
            list,
            rows=True,
        )

    def known_queues(self) -> Call[list[str]]:
        # every queue a task was ever enqueued to has its enqueued count: no scan of tasks
        return Call(
            f"SELECT DISTINCT queue FROM {self.s}.stats "
            "WHERE ns = %s AND left(queue, 1) <> '#' "
            f"UNION SELECT DISTINCT queue FROM {self.s}.stats_log "
            "WHERE ns = %s AND left(queue, 1) <> '#'",
            (self.ns, self.ns),
            lambda rows: [r[0] for r in rows],
            rows=True,
        )

    def incr_counters(self, group: str, counts: dict[str, int]) -> Call[None]:
        return self.bump("#" + group, counts)

    def bump(self, queue: str, counts: dict[str, int]) -> Call[None]:
        """Add ``counts`` to ``queue``'s counters."""
        names = list(counts)
        return Call(
            f"SELECT {self.s}.bump(%s, %s::text[], %s::text[], %s::bigint[])",
            (self.ns, [queue] * len(names), names, [counts[n] for n in names]),
            _none,
        )

    def read_counters(self, group: str) -> Call[dict[str, int]]:
        return Call(
            f"SELECT * FROM {self.s}.counts(%s, %s)",
            (self.ns, "#" + group),
            lambda row: {n: int(v) for n, v in zip(row[0], row[1], strict=True)},
        )


def _b(value: Any) -> bytes | None:
    return bytes(value) if value is not None else None


def _unique_mode(item: EnqueueItem) -> str | None:
    """The unique mode of ``item`` ('s': until started, 'f': until finished; None: not
    unique)."""
    if item.unique_key is None:
        return None
    u = checked(item.gate).get("u") if item.gate else None
    return str(u[1]) if u else "f"


def _gate(item: EnqueueItem) -> Jsonb | None:
    """The gate ``fetch`` checks (sql/0004_flow.sql): rates, caps and expiry as the producer
    wrote them, or ``{"bad": why}`` for one no producer writes (its task is dead-lettered
    when fetched, as in Redis); None for a task without any (its unique key, if any, is
    held in ``uniques``, not here)."""
    if not item.gate:
        return None
    gate = checked(item.gate)
    gate.pop("u", None)
    return Jsonb(gate) if gate else None
