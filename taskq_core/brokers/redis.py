"""The Redis broker: plans from :mod:`redis_plans`, run by a blocking or an asyncio client.

One connection pool per process for blocking calls and one per event loop for async calls
(redis-py's asyncio connections belong to the loop that opened them). hiredis parses replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import hiredis
import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError, NoScriptError, OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import BrokerFull, InvalidName, NotReplicated
from ..keys import Keys
from ..validation import check_queue_name
from . import resp, scripts, sentinel
from .base import (
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
)
from .cluster import is_cluster_url
from .redis_metrics import RedisMetrics
from .redis_plans import Command, Plan, Plans, ScriptCall
from .redis_records import RedisRecords
from .redis_workflows import RedisWorkflows
from .sentinel import is_sentinel_url

T = TypeVar("T")


def _names(members: Any) -> list[str]:
    """The valid queue names among ``members`` of the queue set, sorted. Anything else
    written there (bytes that are not UTF-8, a name the core would refuse) is skipped: one
    stray member must not stop a worker's start-up or ``taskq status``."""
    names = set()
    for member in members:
        try:
            text = member.decode() if isinstance(member, bytes) else str(member)
            names.add(check_queue_name(text))
        except (UnicodeDecodeError, InvalidName):
            continue
    return sorted(names)


def _missing(plan: Plan[Any], replies: list[Any]) -> list[int]:
    """The commands of ``plan`` to send again: those refused for a script the server did
    not have, and the plan's WAIT after them."""
    missing = [at for at, reply in enumerate(replies) if _is_noscript(reply)]
    if missing and plan.waits and missing[-1] != len(replies) - 1:
        missing.append(len(replies) - 1)
    return missing


def _is_noscript(reply: Any) -> bool:
    return isinstance(reply, NoScriptError) or (
        isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")
    )


_FAST: dict[type, type] = {}


def _hiredis_packing(base: type) -> type:
    """``base`` (an asyncio connection class) packing commands with hiredis.

    redis-py's blocking connections pack with hiredis's C packer, its asyncio ones in pure
    Python: about 50 us more for a worker's fetch-and-settle round trip. The subclass keeps
    the scheme's connection class (TCP, TLS, Unix socket) and falls back to redis-py's
    packer for anything hiredis does not take."""
    fast = _FAST.get(base)
    if fast is None:

        def pack_command(self: Any, *args: Any) -> list[bytes]:
            if not (isinstance(args[0], str) and " " in args[0]):
                try:
                    return [hiredis.pack_command(args)]
                except TypeError:
                    pass
            packed: list[bytes] = base.pack_command(self, *args)  # type: ignore[attr-defined]
            return packed

        fast = _FAST[base] = type(
            f"Hiredis{base.__name__}", (base,), {"pack_command": pack_command}
        )
    return fast


class RedisBroker(RedisRecords, RedisMetrics, RedisWorkflows):
    """Tasks stored in Redis. ``url`` is a ``redis://``, ``rediss://``, ``unix://``,
    ``redis+sentinel://`` (brokers/sentinel.py) or ``redis+cluster://`` URL; for the last,
    ``RedisBroker(url)`` makes a :class:`~taskq_core.brokers.cluster_broker.ClusterBroker`."""

    #: the hot plans go out on raw pooled connections (``_send_lean``): one server only
    lean_sends = True

    def __new__(cls, url: str, *args: Any, **kwargs: Any) -> RedisBroker:
        if cls is RedisBroker and is_cluster_url(url):
            from .cluster_broker import ClusterBroker

            return super().__new__(ClusterBroker)
        return super().__new__(cls)

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "taskq",
        settings: Settings | None = None,
        max_connections: int = 64,
        socket_timeout: float | None = 10.0,
        socket_connect_timeout: float = 5.0,
        retries: int | None = None,
        tls: dict[str, Any] | None = None,
        min_replicas_acked: int = 0,
        replica_ack_timeout: float = 1.0,
    ) -> None:
        self.url = url
        #: an enqueue returns only once this many replicas have it (WAIT), else raises
        #: NotReplicated: what survives a failover (docs/scaling.md)
        self.min_replicas_acked = min_replicas_acked
        self.replica_ack_timeout_ms = max(1, int(replica_ack_timeout * 1000))
        #: redis-py's ``ssl_*`` options (CA, client certificate, verification) for every
        #: client this broker makes; see :func:`taskq_core.tls.client_options`
        self.tls: dict[str, Any] = dict(tls or {})
        self.settings = settings or Settings()
        self.keys = Keys(prefix)
        self.plans = Plans(self.keys, self.settings)
        self._options: dict[str, Any] = {
            "max_connections": max_connections,
            "socket_connect_timeout": socket_connect_timeout,
            "health_check_interval": 30,
            **self.tls,
            # a peer that vanished without a word (a half-open link) is found by the kernel
            # even on an idle pooled connection, not only by the next call's timeout
            "socket_keepalive": True,
            "socket_keepalive_options": keepalive_options(),
        }
        # redis-py retries a failed call of the blocking client ten times by default, each
        # retry with its own timeouts: over a half-open link one call would last minutes.
        # One retry on a fresh connection (a pooled one the server closed) as the lean sends
        # do; a probe (health) none. (The asyncio clients' calls are bounded as a whole.)
        self._retries = 1 if retries is None else retries
        self._socket_timeout = socket_timeout
        self.client: redis.Redis = self._make_client(
            url,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), self._retries),
            **self._options,
        )
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        # the lean sends' connections have no socket timeout of their own: one timeout covers
        # the whole exchange (redis-py wraps each write in asyncio.wait_for, which makes an
        # asyncio.Task on Python 3.11, and each read in a timeout context)
        self._leanclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._lean: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LeanLoop] = (
            weakref.WeakKeyDictionary()
        )
        # idle connections the blocking lean sends keep in front of the pool (see _take)
        self._spares: list[Any] = []
        self._probes: dict[float, RedisBroker] = {}

    def __repr__(self) -> str:
        from ..redact import redact_url

        return f"RedisBroker({redact_url(self.url)!r}, prefix={self.keys.prefix!r})"

    # -- running plans

    def aclient(self) -> aioredis.Redis:
        """The asyncio client of the running loop."""
        # the same socket timeout as the blocking client (redis-py 8 otherwise applies 5 s):
        # wait_async keeps its BLPOP well inside it
        return self._loop_client(self._async, self._socket_timeout)

    def _loop_client(
        self,
        clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis],
        socket_timeout: float | None,
    ) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = clients.get(loop)
        if client is None:
            client = self._make_async_client(
                self.url,
                socket_timeout=socket_timeout,
                # redis-py's own retries here: every asyncio call is bounded as a whole
                # (the lean timer, or bounded()), however often redis-py tries
                **self._options,
            )
            pool = client.connection_pool
            pool.connection_class = _hiredis_packing(pool.connection_class)
            clients[loop] = client
        return client

    # the clients of a single Redis or a Sentinel-managed master; ClusterBroker has its own
    @staticmethod
    def _make_client(url: str, **options: Any) -> redis.Redis:
        make = sentinel.client if is_sentinel_url(url) else redis.Redis.from_url
        return make(url, **options)

    @staticmethod
    def _make_async_client(url: str, **options: Any) -> aioredis.Redis:
        make = sentinel.async_client if is_sentinel_url(url) else aioredis.Redis.from_url
        return make(url, **options)

    def run(self, plan: Plan[T]) -> T:
        """Run a plan with the blocking client, in one round trip."""
        if not plan.commands:
            return plan.parse([])
        if plan.lean and self.lean_sends:
            wire: list[Any] = _packed(plan.commands)
            send: Callable[[list[Any]], list[Any]] = self._send_lean
        else:
            wire, send = _commands(plan.commands), self._send
        replies = send(wire)
        if _failed(replies):
            missing = _missing(plan, replies)
            if missing:
                # the server lost its scripts (restart, SCRIPT FLUSH, a failover): the
                # refused calls did nothing, so they are sent again once the scripts are
                # loaded (with the plan's WAIT, which must follow them)
                self._load_scripts()
                again = send([wire[at] for at in missing])
                for at, reply in zip(missing, again, strict=True):
                    replies[at] = reply
            _raise_errors(replies)
        return plan.parse(replies)

    async def run_async(self, plan: Plan[T]) -> T:
        """Run a plan with the asyncio client of the running loop, in one round trip."""
        if not plan.commands:
            return plan.parse([])
        if plan.lean and self.lean_sends:
            wire: list[Any] = _packed(plan.commands)
            send: Callable[[list[Any]], Awaitable[list[Any]]] = self._send_lean_async
        else:
            wire, send = _commands(plan.commands), self._send_async
        replies = await send(wire)
        if _failed(replies):
            missing = _missing(plan, replies)
            if missing:
                await self._load_scripts_async()
                again = await send([wire[at] for at in missing])
                for at, reply in zip(missing, again, strict=True):
                    replies[at] = reply
            _raise_errors(replies)
        return plan.parse(replies)

    # Two ways to send: the client's (response callbacks, redis-py's retries), and the lean
    # way of the hot plans (enqueue, fetch, settle), which read raw replies on a pooled
    # connection: redis-py 8's pipeline adds about 70 us of Python to each asyncio round
    # trip (observability hooks, locks, retry wrappers), more than Redis takes to run a
    # worker's 16-task fetch. The lean way tries a second connection once after a
    # connection error (a pooled connection the server closed), as redis-py does.

    def _send(self, commands: list[Command]) -> list[Any]:
        if len(commands) == 1:
            try:
                return [self.client.execute_command(*commands[0])]
            except ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute(raise_on_error=False))

    async def _send_async(self, commands: list[Command]) -> list[Any]:
        return await self.bounded(self._send_async_unbounded(commands))

    async def _send_async_unbounded(self, commands: list[Command]) -> list[Any]:
        client = self.aclient()
        if len(commands) == 1:
            try:
                return [await client.execute_command(*commands[0])]
            except ResponseError as exc:
                return [exc]
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute(raise_on_error=False))

    @property
    def call_bound(self) -> float | None:
        """The longest an asyncio call to Redis lasts, in seconds (``None``: no bound).

        Twice the socket timeout plus the connect timeout: room for the blocking client's
        one retry on a fresh connection (a pooled one the server closed). Asyncio calls are
        cut at this bound as a whole, whatever redis-py's own retries; the lean sends (the
        worker's hot path) at the socket timeout."""
        if self._socket_timeout is None:
            return None
        connect: float = self._options["socket_connect_timeout"]
        return 2 * self._socket_timeout + connect

    async def bounded(self, call: Awaitable[T]) -> T:
        """``call`` (redis-py's client at work), given up as a :class:`RedisTimeoutError`
        after the socket timeout plus a retry (see :attr:`call_bound`): redis-py bounds
        each read, not a call that connects, checks health and retries."""
        bound = self.call_bound
        if bound is None:
            return await call
        limit = asyncio.timeout(bound)
        try:
            async with limit:
                return await call
        except TimeoutError:
            if not limit.expired():
                raise  # not ours
            raise RedisTimeoutError(f"no reply from Redis within {bound:g}s") from None

    def _send_lean(self, packed: list[bytes], again: bool = True) -> list[Any]:
        pool = self.client.connection_pool
        spares = self._spares
        conn = _take(spares) or pool.get_connection()
        try:
            conn.send_packed_command([_joined(packed)])
            replies: list[Any] = []
            for _ in packed:
                try:
                    replies.append(conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except ConnectionError:
            conn.disconnect()
            pool.release(conn)
            if not again:
                raise
            return self._send_lean(packed, again=False)
        except BaseException:
            conn.disconnect()  # a reply may be left unread: the connection is unusable
            pool.release(conn)
            raise
        if len(spares) < _SPARES:
            spares.append(conn)
        else:
            pool.release(conn)
        return replies

    async def _send_lean_async(
        self, packed: list[bytes], again: bool = True, deadline: float | None = None
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        lean = self._lean.get(loop) or self._lean_loop(loop)
        pool = lean.pool
        # the exchange's timeout: a timer that cancels this task, as asyncio.timeout does
        # (a cancellation it did not make passes through), at a fraction of its cost: no
        # context manager, no coroutines of its own. It starts before the connection is
        # taken: a new connection's handshake and a pooled one's health-check PING read
        # without a timeout of their own, and over a half-open link they never end.
        task = asyncio.current_task()
        assert task is not None
        cancelling = task.cancelling()
        timer = None
        if self._socket_timeout is not None:
            if deadline is None:
                deadline = loop.time() + self._socket_timeout
            timer = loop.call_at(deadline, _expire, task, lean)
        conn = None
        try:
            conn = _take(lean.spares) or await pool.get_connection()
            await conn.send_packed_command([_joined(packed)])
            replies: list[Any] = []
            for _ in packed:
                try:
                    replies.append(await conn.read_response())
                except ResponseError as exc:
                    replies.append(exc)
        except asyncio.CancelledError:
            if conn is not None:
                await _drop(pool, conn)
            if task in lean.expired:
                lean.expired.discard(task)
                if task.uncancel() <= cancelling:
                    raise RedisTimeoutError(
                        f"no reply from Redis within {self._socket_timeout}s"
                    ) from None
            raise
        except ConnectionError:
            if conn is not None:
                await _drop(pool, conn)
            if not again:
                raise
            if timer is not None:
                timer.cancel()
                timer = None
            # the retry keeps this call's deadline: one bound for the whole call
            return await self._send_lean_async(packed, again=False, deadline=deadline)
        except BaseException:
            if conn is not None:
                await _drop(pool, conn)  # a reply may be left unread: the connection is unusable
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if len(lean.spares) < _SPARES:
            lean.spares.append(conn)
        else:
            await pool.release(conn)
        return replies

    async def reset_async(self) -> None:
        """Drop the connections of the running loop (idle ones now, busy ones as they are
        given back): after a call was abandoned, the others on the same link are likely
        dead too (a half-open link), and a fresh connection is the way back."""
        loop = asyncio.get_running_loop()
        lean = self._lean.get(loop)
        if lean is not None:
            spares, lean.spares = lean.spares, []
            for conn in spares:
                await _drop(lean.pool, conn)
        for clients in (self._leanclients, self._async):
            client = clients.get(loop)
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.connection_pool.disconnect(), 1.0)

    def _lean_loop(self, loop: asyncio.AbstractEventLoop) -> _LeanLoop:
        lean = self._lean[loop] = _LeanLoop(self._loop_client(self._leanclients, None))
        return lean

    def load_scripts(self) -> None:
        """Load every Lua script into Redis (``SCRIPT LOAD``); the start-up check uses it to
        learn whether the ACL user may run them."""
        self._load_scripts()

    def _load_scripts(self) -> None:
        for script in scripts.ALL:
            self.client.script_load(script.source)

    async def _load_scripts_async(self) -> None:
        client = self.aclient()
        for script in scripts.ALL:
            await self.bounded(client.script_load(script.source))

    # -- producers

    def enqueue(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]:
        return self.run(self.replicated(self.plans.enqueue(items, now_ms)))

    async def enqueue_async(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]:
        return await self.run_async(self.replicated(self.plans.enqueue(items, now_ms)))

    def replicated(self, plan: Plan[T]) -> Plan[T]:
        """``plan`` followed, with ``min_replicas_acked`` set, by a WAIT in the same round
        trip: its result only once that many replicas have its writes (NotReplicated
        otherwise)."""
        n = self.min_replicas_acked
        if n <= 0:
            return plan
        timeout = self.replica_ack_timeout_ms
        parse = plan.parse

        def acked(replies: list[Any]) -> T:
            got = replies[-1]
            if isinstance(got, Exception):
                raise got
            if int(got) < n:
                raise NotReplicated(
                    f"the enqueue reached the master but {int(got)} of the "
                    f"{n} replica(s) broker.min_replicas_acked asks for confirmed it within "
                    f"{timeout} ms: it is lost if the master fails before a replica copies it "
                    "(retry with the same idempotency_key or task_id)"
                )
            return parse(replies[:-1])

        return Plan([*plan.commands, ("WAIT", n, timeout)], acked, lean=plan.lean, waits=True)

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
        return self.run(self.plans.fetch(queues, want, now_ms, outcomes, stats, alone=alone))

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
        return await self.run_async(
            self.plans.fetch(queues, want, now_ms, outcomes, stats, alone=alone)
        )

    async def wait_async(
        self, queues: Sequence[str], timeout: float, nudge: str | None = None
    ) -> bool:
        """Block until a wake token arrives on one of ``queues``, :meth:`nudge_async` names
        ``nudge``, or ``timeout`` passes."""
        if timeout <= 0:
            return False
        keys = self.plans.wait_keys(queues, nudge)
        reply = await self.bounded(
            self.aclient().blpop(keys, timeout=self._blocking_timeout(timeout))
        )
        return reply is not None

    def _blocking_timeout(self, timeout: float) -> float:
        if self._socket_timeout is not None:
            # a blocking read longer than the socket timeout would be cut off as an error
            timeout = min(timeout, max(0.1, self._socket_timeout - 1.0))
        # BLPOP takes seconds with millisecond resolution; 0 would block forever
        return round(max(timeout, 0.001), 3)

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
        """:meth:`wait_async`, then a fetch of up to ``want`` tasks, in one round trip.

        The fetch follows the ``BLPOP`` on the same connection, so Redis runs it the moment
        the wait returns: an idle worker gets a new task one round trip after its enqueue,
        not two. With ``now_ms`` 0 the lease starts at the server's time when the fetch
        runs, after the wait; a caller's ``now_ms`` (a test's clock) is the time of the
        call."""
        timeout = self._blocking_timeout(timeout)
        return await self.run_async(
            self.plans.wait_fetch(queues, timeout, nudge, want, now_ms, alone=alone)
        )

    async def nudge_async(self, queues: Sequence[str], waiter: str) -> None:
        """Wake the :meth:`wait_async` call that passed ``nudge=waiter`` (or its next one).

        Waking a blocked ``BLPOP`` by a push, rather than by cancelling the call, returns at
        once and leaves the connection usable."""
        key = self.keys.nudge(queues[0], waiter)
        await self.run_async(Plan([("LPUSH", key, "1"), ("PEXPIRE", key, 60_000)], lambda r: None))

    def settle(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]:
        return self.run(self.plans.settle(outcomes, now_ms, stats))

    async def settle_async(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]:
        return await self.run_async(self.plans.settle(outcomes, now_ms, stats))

    def renew(
        self,
        leases: Sequence[Lease],
        now_ms: int,
        progress: Mapping[tuple[str, str], bytes] | None = None,
    ) -> Renewal:
        return self.run(self.plans.renew(leases, now_ms, progress))

    def release(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int:
        return self.run(self.plans.release(leases, mode, reason, now_ms or 0))

    async def release_async(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int:
        return await self.run_async(self.plans.release(leases, mode, reason, now_ms or 0))

    # -- handles and administration

    def get(self, queue: str, task_id: str) -> TaskState | None:
        return self.run(self.plans.get(queue, task_id))

    async def get_async(self, queue: str, task_id: str) -> TaskState | None:
        return await self.run_async(self.plans.get(queue, task_id))

    def cancel(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str:
        return self.run(self.plans.cancel(queue, task_id, record, abort, now_ms))

    async def cancel_async(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str:
        return await self.run_async(self.plans.cancel(queue, task_id, record, abort, now_ms))

    def dead_list(self, queue: str, offset: int, limit: int) -> list[DeadTask]:
        page = self.run(self.plans.dead_page(queue, offset, limit))
        return self.run(self.plans.dead_details(queue, page))

    def dead_retry(self, queue: str, ids: Sequence[str]) -> int:
        return self.run(self.plans.dead_retry(queue, ids)) if ids else 0

    def dead_purge(self, queue: str, ids: Sequence[str]) -> int:
        return self.run(self.plans.dead_purge(queue, ids)) if ids else 0

    def queue_info(self, queues: Sequence[str]) -> list[QueueInfo]:
        rows = self.run(self.plans.queue_info(queues))
        oldest = [(info.name, oid) for info, oid in rows if oid is not None]
        bodies = self.run(self.plans.messages(oldest)) if oldest else []
        enqueued = dict(zip(oldest, bodies, strict=True))
        out = []
        for info, oid in rows:
            body = enqueued.get((info.name, oid)) if oid is not None else None
            if body and oid is not None:
                from ..message import BadMessage, decode

                try:
                    info.oldest_enqueued_ms = decode(body, task_id=oid, queue=info.name).queued_at
                except BadMessage:
                    info.oldest_enqueued_ms = None
            out.append(info)
        return out

    def wait_for(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], T | None]
    ) -> T | None:
        """ScriptCall ``check`` until it returns something, waking on the queue's announcements of
        settled tasks rather than polling; ``None`` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        ps = self.client.pubsub()
        try:
            ps.subscribe(self.keys.done_channel(queue))
            # the subscription must be live before the first check, or a result that
            # lands in between would go unannounced to us
            while (m := ps.get_message(timeout=5.0)) is not None and m["type"] != "subscribe":
                pass
            while True:
                found = check()
                if found is not None:
                    return found
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    # re-check every few seconds too: an announcement can be missed while
                    # the connection is re-established
                    m = ps.get_message(ignore_subscribe_messages=True, timeout=min(remaining, 5.0))
                    if m is None or task_id.encode() in m["data"].split():
                        break
        finally:
            ps.close()

    async def wait_for_async(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        """The async form of :meth:`wait_for`."""
        deadline = time.monotonic() + timeout
        ps = self.aclient().pubsub()
        try:
            # redis-py bounds each read of a subscription, not its connect and retry
            await self.bounded(ps.subscribe(self.keys.done_channel(queue)))
            while (m := await ps.get_message(timeout=5.0)) is not None and m["type"] != "subscribe":
                pass
            while True:
                found = await check()
                if found is not None:
                    return found
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    m = await ps.get_message(
                        ignore_subscribe_messages=True, timeout=min(remaining, 5.0)
                    )
                    if m is None or task_id.encode() in m["data"].split():
                        break
        finally:
            await ps.aclose()

    def incr_counters(self, group: str, counts: dict[str, int]) -> None:
        self.run(self.plans.incr_counters(group, counts))

    async def incr_counters_async(self, group: str, counts: dict[str, int]) -> None:
        await self.run_async(self.plans.incr_counters(group, counts))

    def read_counters(self, group: str) -> dict[str, int]:
        return self.run(self.plans.read_counters(group))

    def known_queues(self) -> list[str]:
        return _names(self.client.smembers(self.keys.queues()))

    async def known_queues_async(self) -> list[str]:
        return _names(await self.bounded(self.aclient().smembers(self.keys.queues())))

    def ping(self) -> float:
        """Round-trip time in seconds."""
        start = time.perf_counter()
        self.client.ping()
        return time.perf_counter() - start

    # -- observability

    def probe(self, timeout: float) -> RedisBroker:
        """A broker on the same server and prefix whose calls give up after ``timeout``
        seconds without retrying (health checks answer while Redis is down or frozen).
        Made once per timeout and closed with this broker."""
        found = self._probes.get(timeout)
        if found is None:
            found = self._probes[timeout] = RedisBroker(
                self.url,
                prefix=self.keys.prefix,
                settings=self.settings,
                max_connections=8,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retries=0,
                tls=self.tls,
            )
        return found

    def close(self) -> None:
        for b in self._probes.values():
            b.close()
        self._spares.clear()
        self.client.close()  # closes the pool's connections, in use (spare) or not

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - called outside a loop
            return
        self._lean.pop(loop, None)
        for clients in (self._async, self._leanclients):
            client = clients.pop(loop, None)
            if client is not None:
                await client.aclose()


#: idle connections a lean sender keeps for itself (per blocking client, per loop)
_SPARES = 8


def _take(spares: list[Any]) -> Any:
    """An idle connection from ``spares``, or None. Taking one is a ``list.pop()`` (atomic
    between threads), where redis-py's pool takes about 5 us a get and release (locks,
    observability hooks): 6 % of a one-task enqueue. The pool still owns the connections:
    they count as in use there, and closing the client closes them."""
    while spares:
        try:
            conn = spares.pop()
        except IndexError:  # another thread took the last one
            return None
        # a blocking connection inherited from the parent of a fork is not ours to use
        # (asyncio connections belong to a loop, which a fork does not carry over)
        if getattr(conn, "pid", None) in (None, os.getpid()):
            return conn
    return None


class _LeanLoop:
    """What the lean sends of one event loop use: the pool of a client without a socket
    timeout of its own (one timer covers each exchange instead: redis-py wraps each write
    in asyncio.wait_for, which makes an asyncio.Task on Python 3.11), the idle connections
    kept in front of it (see _take), and the tasks whose exchange timed out."""

    __slots__ = ("expired", "pool", "spares")

    def __init__(self, client: aioredis.Redis) -> None:
        self.pool = client.connection_pool
        self.spares: list[Any] = []
        self.expired: set[asyncio.Task[Any]] = set()


def _expire(task: asyncio.Task[Any], lean: _LeanLoop) -> None:
    lean.expired.add(task)
    task.cancel()


def _packed(commands: Sequence[ScriptCall | Command]) -> list[bytes]:
    """The hot plans' commands in the Redis protocol (their arguments are str, bytes and
    int, and no command name holds a space)."""
    return [
        command.packed() if isinstance(command, ScriptCall) else resp.pack(command)
        for command in commands
    ]


def _commands(commands: Sequence[ScriptCall | Command]) -> list[Command]:
    return [
        command.command() if isinstance(command, ScriptCall) else command for command in commands
    ]


def _joined(packed: list[bytes]) -> bytes:
    """One write for the whole round trip (redis-py writes each item of a list alone)."""
    return packed[0] if len(packed) == 1 else b"".join(packed)


def _failed(replies: list[Any]) -> bool:
    return any(isinstance(reply, Exception) for reply in replies)


def _raise_errors(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, OutOfMemoryError) or (
            isinstance(reply, ResponseError) and str(reply).startswith("OOM")
        ):
            # Redis decides whether a script may write before it runs it (the memory state
            # at its start), so a refused enqueue script wrote nothing of its task
            raise BrokerFull(
                "the broker is full: Redis refused a write at its maxmemory limit "
                "(the refused step wrote nothing; free memory or raise maxmemory)"
            ) from reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def keepalive_options() -> dict[int, int]:
    """TCP keepalive for every connection where the platform has the options: probes after
    30 s of silence, every 5 s, the connection dropped after 3 unanswered."""
    wanted = (("TCP_KEEPIDLE", 30), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3))
    return {getattr(socket, n): v for n, v in wanted if hasattr(socket, n)}


async def _drop(pool: Any, conn: Any) -> None:
    """Close ``conn`` and give it back to ``pool``; a close over a dead link is bounded by
    the connect timeout, and a failure to close does not hide the call's own error."""
    with contextlib.suppress(Exception):
        await conn.disconnect()
    await pool.release(conn)
