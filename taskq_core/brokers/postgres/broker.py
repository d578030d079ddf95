"""The PostgreSQL broker: the calls of :mod:`calls` run by psycopg 3's blocking pool or by
an asyncio pool per event loop (psycopg's async connections belong to the loop that opened
them). Idle workers sleep on ``LISTEN`` (:mod:`listen`) and wake on the ``NOTIFY`` that the
enqueue, settle and release functions send when they commit.

A task enqueued with ``connection=`` (a psycopg connection of the application's) is written
in the application's own transaction: it exists if and only if that transaction commits
(docs/postgres.md, "Transactional enqueue").
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from ...errors import BrokerUnavailable
from ...validation import check_queue_name
from ..base import (
    DeadTask,
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
from . import schema as schema_mod
from .calls import Call, Calls, _none
from .listen import Listener
from .maintenance import Maintenance
from .records import PostgresRecords
from .url import parse_url
from .watchdog import TICK, WATCHDOG
from .workflows import PostgresWorkflows, Steps, outbox_rows, run_steps, run_steps_async

T = TypeVar("T")


class PostgresBroker(PostgresWorkflows, PostgresRecords):
    """Tasks in PostgreSQL tables (``sql/0001_init.sql``), on the same contract as Redis."""

    #: enqueues can be written in the application's own transaction (transactional.py)
    transactional = True

    def __init__(
        self,
        url: str,
        prefix: str = "taskq",
        *,
        settings: Settings | None = None,
        max_connections: int = 10,
        connect_timeout: float = 5.0,
        call_timeout: float = 10.0,
        statement_timeout: float | None = None,
    ) -> None:
        self.url = url
        self.ns = prefix
        self.settings = settings or Settings()
        self.conninfo, self.schema = parse_url(url)
        self.calls = Calls(self.schema, prefix, self.settings)
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        #: a call with no answer within this is cut on the client's side (watchdog.py)
        self.call_timeout = call_timeout
        #: the server's own bound, below the call timeout so that a slow statement is
        #: cancelled by the server (rolled back, named) before the client gives up on it
        self.statement_timeout = (
            statement_timeout if statement_timeout is not None else 0.8 * call_timeout
        )
        #: the worker's fetch watch abandons a round trip past this (fetch_watch.py): later
        #: than the watchdog, which is the one that should end it
        self.call_bound = call_timeout + 2 * TICK + 1.0
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()
        self._checked = False
        self._apools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool]
        self._apools = weakref.WeakKeyDictionary()
        self._listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Listener]
        self._listeners = weakref.WeakKeyDictionary()
        self._probes: dict[float, PostgresBroker] = {}
        self.maintenance = Maintenance()

    def __repr__(self) -> str:
        from ...redact import redact_url

        return f"PostgresBroker({redact_url(self.url)!r})"

    # -- connections

    def _kwargs(self) -> dict[str, Any]:
        options = ""
        if self.statement_timeout:
            # a statement that runs longer than this is cancelled by the server, and the
            # call fails with an error naming it (a lock held by the application, a
            # stuck disk): the worker's own retry and back-off take it from there
            options = f"-c statement_timeout={int(self.statement_timeout * 1000)}"
        return {
            "autocommit": True,
            "connect_timeout": max(1, int(self.connect_timeout)),
            "options": options,
            # TCP keepalive: a half-open link is noticed in about 45 s, not hours
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "application_name": "taskq",
        }

    def pool(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=self.max_connections,
                    kwargs=self._kwargs(),
                    timeout=self.connect_timeout,
                    open=True,
                    check=_checker(self.call_timeout),
                )
            pool = self._pool
        if not self._checked:
            with pool.connection() as conn:
                schema_mod.require(conn, self.schema)
            self._checked = True
        return pool

    async def apool(self) -> AsyncConnectionPool:
        loop = asyncio.get_running_loop()
        pool = self._apools.get(loop)
        if pool is None:
            pool = AsyncConnectionPool(
                self.conninfo,
                min_size=1,
                max_size=self.max_connections,
                kwargs=self._kwargs(),
                timeout=self.connect_timeout,
                open=False,
                check=_checker_async(self.call_timeout),
            )
            self._apools[loop] = pool
            await pool.open()
        if not self._checked:
            async with pool.connection() as conn:
                await conn.execute("SELECT 1")  # the connection works before the check
            await asyncio.to_thread(self.pool)
        return pool

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, watched (watchdog.py): a call with no answer within
        ``call_timeout`` is cut and the connection never handed out again; the failures of
        the database become one :class:`BrokerUnavailable`."""
        cut = None
        try:
            with self.pool().connection() as conn:
                conn._taskq_used = time.monotonic()  # type: ignore[attr-defined]
                with WATCHDOG.watch(conn, self.call_timeout) as cut:
                    try:
                        yield conn
                    finally:
                        if cut.cut:
                            conn.close()  # never handed out again
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise self._unavailable(exc, cut is not None and cut.cut, self._pool) from exc

    @contextlib.asynccontextmanager
    async def _connection_async(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        cut = pool = None
        try:
            pool = await self.apool()
            async with pool.connection() as conn:
                conn._taskq_used = time.monotonic()  # type: ignore[attr-defined]
                with WATCHDOG.watch(conn, self.call_timeout) as cut:
                    try:
                        yield conn
                    finally:
                        if cut.cut:
                            await conn.close()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise self._unavailable(exc, cut is not None and cut.cut, pool) from exc

    def run(self, call: Call[T], connection: Any = None) -> T:
        """Run ``call`` on a pooled connection, or on ``connection`` (the application's,
        inside its transaction)."""
        if connection is not None:
            # the application's transaction: its errors are the application's to handle
            return call.read(_rows(connection.execute(call.sql, call.params), call.rows))
        with self._connection() as conn:
            return call.read(_rows(conn.execute(call.sql, call.params), call.rows))

    async def run_async(self, call: Call[T], connection: Any = None) -> T:
        if connection is None:
            async with self._connection_async() as conn:
                return await self._execute_async(conn, call)
        return await self._execute_async(connection, call)

    @staticmethod
    async def _execute_async(conn: Any, call: Call[T]) -> T:
        return call.read(await _rows_async(await conn.execute(call.sql, call.params), call.rows))

    def transaction(self, steps: Steps[T]) -> T:
        """Run the calls ``steps`` yields (each one's result sent back) in one transaction
        on a pooled connection: the workflow operations (workflows.py)."""
        with self._connection() as conn, conn.transaction():
            return run_steps(steps, lambda c: c.read(_rows(conn.execute(c.sql, c.params), c.rows)))

    async def transaction_async(self, steps: Steps[T]) -> T:
        async with self._connection_async() as conn, conn.transaction():
            return await run_steps_async(steps, lambda c: self._execute_async(conn, c))

    def _unavailable(
        self, exc: Exception, cut: bool = False, pool: Any = None
    ) -> BrokerUnavailable:
        """One clear error for a call that failed for want of the database (the statement
        did not commit: a task is either written whole or not at all)."""
        from ...redact import redact_text, redact_url

        where = redact_url(self.url)
        if cut:
            why = (
                f"no answer within {self.call_timeout:g}s (broker.socket_timeout): the link "
                "is down or half-open, and the connection was dropped; an enqueue cut off "
                "this way may or may not have been written (an idempotency key makes the "
                "retry safe)"
            )
        elif isinstance(exc, psycopg.errors.QueryCanceled):
            why = f"a statement ran past the statement timeout ({self.statement_timeout:g}s)"
        elif isinstance(exc, PoolTimeout) and not _full(pool):
            why = (
                f"could not connect within {self.connect_timeout:g}s (the server or the link "
                "to it is down)"
            )
        elif isinstance(exc, PoolTimeout):
            why = (
                f"no connection of the pool ({self.max_connections}) came free within "
                f"{self.connect_timeout:g}s"
            )
        else:
            why = "the connection failed"
        text = str(exc).strip()
        detail = redact_text(text.splitlines()[0]) if text else type(exc).__name__
        return BrokerUnavailable(f"PostgreSQL at {where}: {why}: {detail}")

    # -- producers

    def enqueue(
        self, items: Sequence[EnqueueItem], now_ms: int, connection: Any = None
    ) -> list[str]:
        if not items:
            return []
        return self.run(self.calls.enqueue(items, now_ms), connection)

    async def enqueue_async(
        self, items: Sequence[EnqueueItem], now_ms: int, connection: Any = None
    ) -> list[str]:
        if not items:
            return []
        return await self.run_async(self.calls.enqueue(items, now_ms), connection)

    # -- workers

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
        if outbox_rows(outcomes) is not None:
            # workflow steps: their workflows advance (releasing the steps after them)
            # before the fetch, which may then take those
            stale = self.settle(outcomes, now_ms, stats)
            return self.run(self.calls.fetch(queues, want, now_ms, alone)), stale
        if outcomes or stats:
            return self.run(
                self.calls.settle_fetch(
                    outcomes=outcomes,
                    stats=stats,
                    queues=queues,
                    want=want,
                    now_ms=now_ms,
                    alone=alone,
                )
            )
        return self.run(self.calls.fetch(queues, want, now_ms, alone)), []

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
        if outbox_rows(outcomes) is not None:
            stale = await self.settle_async(outcomes, now_ms, stats)
            return await self.run_async(self.calls.fetch(queues, want, now_ms, alone)), stale
        if outcomes or stats:
            call = self.calls.settle_fetch(
                outcomes=outcomes, stats=stats, queues=queues, want=want, now_ms=now_ms, alone=alone
            )
            return await self.run_async(call)
        return await self.run_async(self.calls.fetch(queues, want, now_ms, alone)), []

    def _listener(self) -> Listener:
        loop = asyncio.get_running_loop()
        found = self._listeners.get(loop)
        if found is None:
            found = self._listeners[loop] = Listener(
                self.conninfo, self._kwargs(), self.channel("wake"), self.ns
            )
        return found

    def channel(self, kind: str) -> str:
        """The name of this namespace's ``kind`` channel ('wake' or 'done'), as the SQL
        function ``channel()`` names it for its ``pg_notify`` (a test holds them equal)."""
        import hashlib

        return f"taskq_{kind}_" + hashlib.md5(self.ns.encode()).hexdigest()[:20]  # noqa: S324

    async def wait_async(
        self, queues: Sequence[str], timeout: float, nudge: str | None = None
    ) -> bool:
        return await self._listener().wait(queues, timeout, nudge)

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
        woken = await self.wait_async(queues, timeout, nudge)
        return woken, (await self.fetch_async(queues, want, now_ms, alone=alone))[0]

    async def nudge_async(self, queues: Sequence[str], waiter: str) -> None:
        self._listener().nudge(waiter)

    def settle(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]:
        if not outcomes and not stats:
            return []
        stale = self.run(self.calls.settle(outcomes, now_ms, stats))
        if outbox_rows(outcomes) is not None:
            self.wf_drain((), now_ms)  # the steps' workflows advance now
        return stale

    async def settle_async(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]:
        if not outcomes and not stats:
            return []
        stale = await self.run_async(self.calls.settle(outcomes, now_ms, stats))
        if outbox_rows(outcomes) is not None:
            await self.wf_drain_async((), now_ms)
        return stale

    def renew(
        self,
        leases: Sequence[Lease],
        now_ms: int,
        progress: Mapping[tuple[str, str], bytes] | None = None,
    ) -> Renewal:
        if not leases:
            return Renewal()
        return self.run(self.calls.renew(leases, now_ms, progress))

    def release(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int:
        call = self.calls.release(leases, mode, reason, now_ms)
        return self.run(call) if leases else 0

    async def release_async(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int:
        call = self.calls.release(leases, mode, reason, now_ms)
        return await self.run_async(call) if leases else 0

    # -- handles and administration

    def get(self, queue: str, task_id: str) -> TaskState | None:
        return self.run(self.calls.get(queue, task_id))

    async def get_async(self, queue: str, task_id: str) -> TaskState | None:
        return await self.run_async(self.calls.get(queue, task_id))

    def cancel(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str:
        return self.run(self.calls.cancel(queue, task_id, record, abort, now_ms))

    async def cancel_async(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str:
        return await self.run_async(self.calls.cancel(queue, task_id, record, abort, now_ms))

    def dead_list(self, queue: str, offset: int, limit: int) -> list[DeadTask]:
        return self.run(self.calls.dead_list(queue, offset, limit))

    def dead_retry(self, queue: str, ids: Sequence[str]) -> int:
        return self.run(self.calls.dead_retry(queue, ids))

    def dead_purge(self, queue: str, ids: Sequence[str]) -> int:
        return self.run(self.calls.dead_purge(queue, ids))

    def queue_info(self, queues: Sequence[str]) -> list[QueueInfo]:
        from ...message import BadMessage, decode

        out = []
        for name, ready, delayed, leased, dead, waiting, first, names, values in self.run(
            self.calls.queue_counts(queues)
        ):
            oldest = None
            if first is not None and first[1] is not None:
                tid = bytes(first[0]).decode()
                try:
                    oldest = decode(bytes(first[1]), task_id=tid, queue=name).queued_at
                except BadMessage:
                    oldest = None
            stats = queue_stats(dict(zip(names, values, strict=True)))
            out.append(QueueInfo(name, ready, delayed, leased, dead, oldest, stats, waiting))
        return out

    # -- waiting for a task's end

    def wait_for(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], T | None]
    ) -> T | None:
        """``check()`` until it answers or ``timeout`` passes, woken by the ``NOTIFY`` a
        settle sends (a dedicated connection LISTENs meanwhile)."""
        deadline = time.monotonic() + timeout
        conn = psycopg.connect(self.conninfo, **self._kwargs())
        try:
            conn.execute(f"LISTEN {self.channel('done')}")
            while True:
                found = check()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                for _ in conn.notifies(timeout=min(remaining, 1.0), stop_after=1):
                    pass
        finally:
            conn.close()

    async def wait_for_async(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        deadline = time.monotonic() + timeout
        conn = await psycopg.AsyncConnection.connect(self.conninfo, **self._kwargs())
        try:
            await conn.execute(f"LISTEN {self.channel('done')}")
            while True:
                found = await check()
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                async for _ in conn.notifies(timeout=min(remaining, 1.0), stop_after=1):
                    pass
        finally:
            await conn.close()

    # -- counters, queues, health

    def known_queues(self) -> list[str]:
        return _names(self.run(self.calls.known_queues()))

    async def known_queues_async(self) -> list[str]:
        return _names(await self.run_async(self.calls.known_queues()))

    def incr_counters(self, group: str, counts: dict[str, int]) -> None:
        if counts:
            self.run(self.calls.incr_counters(group, counts))

    async def incr_counters_async(self, group: str, counts: dict[str, int]) -> None:
        if counts:
            await self.run_async(self.calls.incr_counters(group, counts))

    def read_counters(self, group: str) -> dict[str, int]:
        return self.run(self.calls.read_counters(group))

    def ping(self) -> float:
        """Round-trip time in seconds."""
        start = time.perf_counter()
        self.run(Call("SELECT 1", (), _none))
        return time.perf_counter() - start

    def pool_stats(self) -> dict[str, int]:
        """The blocking pool's state (psycopg_pool's names): size, available, waiting."""
        stats = self._pool.get_stats() if self._pool is not None else {}
        return {
            k: int(stats.get(k, 0)) for k in ("pool_size", "pool_available", "requests_waiting")
        }

    def probe(self, timeout: float) -> PostgresBroker:
        found = self._probes.get(timeout)
        if found is None:
            found = self._probes[timeout] = PostgresBroker(
                self.url,
                prefix=self.ns,
                settings=self.settings,
                max_connections=2,
                connect_timeout=timeout,
                call_timeout=timeout,
            )
        return found

    def close(self) -> None:
        for b in self._probes.values():
            b.close()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def aclose(self) -> None:
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            listener = self._listeners.pop(loop, None)
            if listener is not None:
                await listener.close()
            pool = self._apools.pop(loop, None)
            if pool is not None:
                await pool.close()


#: a pooled connection used less than this many seconds ago is handed out unchecked: the
#: check is a round trip of its own, which doubled the cost of every call. One idle longer
#: (perhaps across a server restart) is checked first, and replaced if it is broken
CHECK_AFTER = 2.0


def _checker(timeout: float) -> Callable[[psycopg.Connection[Any]], None]:
    def check(conn: psycopg.Connection[Any]) -> None:
        if time.monotonic() - getattr(conn, "_taskq_used", 0.0) >= CHECK_AFTER:
            # bounded like a call: on a half-open link the check's round trip would wait
            # forever, and the pool would never hand out another connection
            with WATCHDOG.watch(conn, timeout):
                ConnectionPool.check_connection(conn)

    return check


def _checker_async(timeout: float) -> Callable[[psycopg.AsyncConnection[Any]], Awaitable[None]]:
    async def check(conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - getattr(conn, "_taskq_used", 0.0) >= CHECK_AFTER:
            with WATCHDOG.watch(conn, timeout):
                await AsyncConnectionPool.check_connection(conn)

    return check


def _full(pool: Any) -> bool:
    """Whether ``pool`` holds all the connections it may (else a wait for one timed out
    because no new connection could be made)."""
    if pool is None:
        return True
    stats = pool.get_stats()
    return bool(stats.get("pool_size", 0) >= pool.max_size)


def _rows(cur: Any, many: bool) -> Any:
    """Every row (``many``) or the first, of a statement that may return none."""
    if cur.description is None:
        return [] if many else None
    return cur.fetchall() if many else cur.fetchone()


async def _rows_async(cur: Any, many: bool) -> Any:
    if cur.description is None:
        return [] if many else None
    return await cur.fetchall() if many else await cur.fetchone()


def _names(names: list[str]) -> list[str]:
    out = set()
    for name in names:
        with contextlib.suppress(Exception):
            out.add(check_queue_name(name))
    return sorted(out)
