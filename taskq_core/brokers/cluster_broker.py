"""The broker on a Redis Cluster (``redis+cluster://``; what differs, and why, is in
``brokers/cluster.py``'s docstring and docs/scaling.md). ``RedisBroker(url)`` makes one for a
Cluster URL; everything not overridden here is the single-Redis broker's own code, whose
plans already keep each script call in one slot and send the rest key by key."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import weakref
from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import InvalidOption
from . import cluster, scripts
from .base import FetchResult, Outcome
from .redis import RedisBroker, _commands, _is_noscript, _raise_errors
from .redis_plans import Command, Plan, ScriptCall

T = TypeVar("T")

#: a fetch in rounds: each round's plan out, its result back, the whole result at the end
Fetching = Generator[Plan[Any], Any, tuple[FetchResult, list[Outcome]]]

NO_WORKFLOWS = (
    "workflows are not supported on a Redis Cluster yet: a workflow's record and the queues "
    "of its steps are in different slots, and a step's outcome advances both in one script "
    "(docs/scaling.md); run workflows on a single Redis or Sentinel"
)


def _joint(plans: Sequence[Plan[Any]]) -> Plan[list[Any]]:
    """The commands of ``plans`` in one round trip; the result is each plan's, in order."""
    commands: list[ScriptCall | Command] = [c for p in plans for c in p.commands]

    def parse(replies: list[Any]) -> list[Any]:
        out, at = [], 0
        for plan in plans:
            n = len(plan.commands)
            out.append(plan.parse(replies[at : at + n]))
            at += n
        return out

    return Plan(commands, parse)


class ClusterBroker(RedisBroker):
    """Tasks stored in a Redis Cluster."""

    lean_sends = False
    _client: Any
    _client_factory: Any
    _client_lock: threading.Lock

    def __init__(self, url: str, **options: Any) -> None:
        cluster.parse(url)  # a bad URL is named before any connection
        super().__init__(url, **options)

    @staticmethod
    def _make_client(url: str, **options: Any) -> Any:
        # made on first use: redis-py's blocking Cluster client reads the slot map when it
        # is built, and an application must start (and say so by its health check) while
        # the Cluster is down, as it does with a single Redis
        return functools.partial(cluster.client, url, **options)

    @property
    def client(self) -> Any:
        made = self._client
        if made is None:
            with self._client_lock:
                made = self._client
                if made is None:
                    made = self._client = self._client_factory()
        return made

    @client.setter
    def client(self, factory: Any) -> None:
        self._client_factory = factory
        self._client = None
        self._client_lock = threading.Lock()

    def close(self) -> None:
        for b in self._probes.values():
            b.close()
        if self._client is not None:
            self._client.close()

    def _loop_client(
        self,
        clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis],
        socket_timeout: float | None,
    ) -> Any:
        loop = asyncio.get_running_loop()
        client: Any = clients.get(loop)
        if client is None:
            client = cluster.async_client(self.url, socket_timeout=socket_timeout, **self._options)
            clients[loop] = client
        return client

    # -- plans with a WAIT (broker.min_replicas_acked): per master, on one connection

    def run(self, plan: Plan[T]) -> T:
        if plan.waits:
            return self._run_waiting(plan)
        return super().run(plan)

    async def run_async(self, plan: Plan[T]) -> T:
        if plan.waits:
            # the blocking client, in a thread: one implementation of the per-node sends
            # (an acknowledged enqueue waits for a replica anyway)
            return await asyncio.to_thread(self._run_waiting, plan)
        return await super().run_async(plan)

    def _run_waiting(self, plan: Plan[T]) -> T:
        """``plan``, whose last command is a WAIT, on a Cluster: WAIT counts the replicas
        that have the writes of its own connection, so the commands for each master go in
        one pipeline on one connection to it, followed by the WAIT; the plan is told the
        fewest replicas any master confirmed. A command refused for a script the master
        did not have, or for a slot that moved, is sent once more (after loading the
        scripts, or reading the slot map again) with a WAIT of its own."""
        *commands, wait = _commands(plan.commands)
        replies: list[Any] = [None] * len(commands)
        acked: list[Any] = []
        pending = list(range(len(commands)))
        for attempt in range(2):
            groups: dict[str, tuple[Any, list[int]]] = {}
            for at in pending:
                node = self.client.get_node_from_key(_first_key(commands[at]))
                groups.setdefault(node.name, (node, []))[1].append(at)
            pending = []
            moved = False
            for node, ats in groups.values():
                conn = node.redis_connection
                pipe = conn.pipeline(transaction=False)
                for at in ats:
                    pipe.execute_command(*commands[at])
                pipe.execute_command(*wait)
                try:
                    got = pipe.execute(raise_on_error=False)
                except (ConnectionError, RedisTimeoutError):
                    self._refresh_slots()  # the master may be gone: ask where its slots went
                    raise
                acked.append(got[-1])
                for at, reply in zip(ats, got[:-1], strict=True):
                    replies[at] = reply
                    if attempt == 0 and _is_noscript(reply):
                        for script in scripts.ALL:
                            conn.script_load(script.source)
                        pending.append(at)
                    elif attempt == 0 and _is_redirect(reply):
                        moved = True
                        pending.append(at)
            if not pending:
                break
            if moved:
                self._refresh_slots()
        _raise_errors(replies)
        counts = [a for a in acked if not isinstance(a, Exception)]
        fewest = min(int(a) for a in counts) if len(counts) == len(acked) else acked[0]
        return plan.parse([*replies, fewest])

    def _refresh_slots(self) -> None:
        # during an election no node may answer yet: the next call asks again
        with contextlib.suppress(Exception):
            self.client.nodes_manager.initialize()

    async def reset_async(self) -> None:
        """Drop the running loop's Cluster client (the next call makes a new one, which
        reads the slot map afresh): after an abandoned call its links are suspect."""
        loop = asyncio.get_running_loop()
        client = self._async.pop(loop, None)
        if client is not None:
            with contextlib.suppress(Exception):  # a dead link may not close cleanly
                await asyncio.wait_for(client.aclose(), 1.0)

    # -- fetch: queue by queue, in priority order

    def _fetching(
        self,
        queues: Sequence[str],
        want: int,
        now_ms: int,
        *,
        outcomes: Sequence[Outcome],
        stats: dict[str, dict[str, int]] | None,
        alone: bool,
    ) -> Fetching:
        """The rounds of a fetch. The first carries the outcomes to settle. With ``want``
        0 (settle, re-queue lapsed leases, promote due tasks) every queue is visited in one
        round; otherwise queue after queue, each asked for what the ones before it did not
        give, until ``want`` is met or a suspect (leased alone) is given."""
        plans = self.plans
        if want <= 0:
            parts = [
                plans.fetch([q], 0, now_ms, outcomes if i == 0 else (), stats if i == 0 else None)
                for i, q in enumerate(queues)
            ]
            replies = yield _joint(parts)
            return cluster.merge_fetches([r for r, _ in replies]), replies[0][1] if replies else []
        results: list[FetchResult] = []
        stale: list[Outcome] = []
        got = 0
        for i, queue in enumerate(queues):
            first = i == 0
            plan = plans.fetch(
                [queue],
                want - got,
                now_ms,
                outcomes if first else (),
                stats if first else None,
                alone=alone and got == 0,
            )
            result, settled_stale = yield plan
            stale += settled_stale
            results.append(result)
            got += len(result.deliveries)
            if got >= want or result.suspect:
                break
        return cluster.merge_fetches(results), stale

    def _drive(self, rounds: Generator[Plan[Any], Any, T]) -> T:
        try:
            plan = next(rounds)
            while True:
                plan = rounds.send(self.run(plan))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _drive_async(self, rounds: Generator[Plan[Any], Any, T]) -> T:
        try:
            plan = next(rounds)
            while True:
                plan = rounds.send(await self.run_async(plan))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

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
        rounds = self._fetching(queues, want, now_ms, outcomes=outcomes, stats=stats, alone=alone)
        return self._drive(rounds)

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
        rounds = self._fetching(queues, want, now_ms, outcomes=outcomes, stats=stats, alone=alone)
        return await self._drive_async(rounds)

    # -- the idle wait: one BLPOP per slot, all at once

    def _wait_groups(self, queues: Sequence[str], nudge: str) -> list[tuple[list[str], str]]:
        """Per slot of ``queues`` (in order of first appearance): the wake lists there, and
        the waiter's nudge list there (named after the slot's first queue, so the nudge
        list of ``queues[0]``, which :meth:`nudge_async` pushes, is the first group's)."""
        groups: dict[int, tuple[list[str], str]] = {}
        for queue in queues:
            wake = self.keys.wake(queue)
            slot = cluster.slot_of(wake)
            if slot not in groups:
                groups[slot] = ([], self.keys.nudge(queue, nudge))
            groups[slot][0].append(wake)
        return list(groups.values())

    async def wait_async(
        self, queues: Sequence[str], timeout: float, nudge: str | None = None
    ) -> bool:
        """Block until a wake token arrives on one of ``queues``, :meth:`nudge_async` names
        ``nudge``, or ``timeout`` passes: one BLPOP per slot at once. The first to return
        ends the others by a push on their nudge lists: a BLPOP cancelled after the server
        popped a token would drop it, and a sleeper elsewhere would not wake. A wake token
        one of the others took meanwhile is pushed back for the next sleeper."""
        if timeout <= 0 or not queues:
            return False
        timeout = self._blocking_timeout(timeout)
        waiter = nudge or f"wait-{os.urandom(8).hex()}"
        groups = self._wait_groups(queues, waiter)
        client = self.aclient()
        waits = [
            asyncio.ensure_future(self.bounded(client.blpop([*wakes, stop], timeout=timeout)))
            for wakes, stop in groups
        ]
        try:
            done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            ended = [g for g, w in zip(groups, waits, strict=True) if w in pending]
            if ended:
                stops: list[ScriptCall | Command] = []
                for _, stop in ended:
                    stops += [("LPUSH", stop, "1"), ("PEXPIRE", stop, 60_000)]
                await self.run_async(Plan(stops, lambda r: None))
            replies = await asyncio.gather(*waits, return_exceptions=True)
        except BaseException:
            for w in waits:
                w.cancel()
            raise
        first = next(iter(done))
        back: list[ScriptCall | Command] = []
        woke = False
        for (_, stop), wait, reply in zip(groups, waits, replies, strict=True):
            if isinstance(reply, BaseException):
                if wait is first:
                    raise reply
                continue
            if reply is None:
                continue
            key = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
            woke = woke or wait is first
            if wait is not first and key != stop:
                # it took a wake token before our push ended it: the token goes back, and the
                # push that ended nothing goes too (it would wake our next wait at once)
                back += [("LPUSH", key, "1"), ("DEL", stop)]
        if back:
            await self.run_async(Plan(back, lambda r: None))
        return woke

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
        """:meth:`wait_async`, then a fetch: on a Cluster the wake lists of the queues are on
        several nodes, so the fetch cannot ride on the wait's connection."""
        woke = await self.wait_async(queues, timeout, nudge)
        result, _ = await self.fetch_async(queues, want, now_ms, alone=alone)
        return woke, result

    # -- readings from every master

    def _on_masters(self, read: Callable[[Any], T], key: str | None = None) -> list[T]:
        """``read`` of a plain client of every master (of ``key``'s master only, given a
        key). A master that does not answer may have been replaced (a failover): the slot
        map is read again and every master asked once more; a second failure raises."""
        for attempt in (0, 1):
            if key is not None:
                nodes = [self.client.get_node_from_key(key)]
            else:
                nodes = self.client.get_primaries()
            try:
                return [read(node.redis_connection) for node in nodes]
            except (ConnectionError, RedisTimeoutError):
                if attempt:
                    raise
                self._refresh_slots()
        raise AssertionError("unreachable")  # pragma: no cover

    def server_info(self) -> dict[str, Any]:
        return cluster.fullest(self._on_masters(lambda c: dict(c.info())))

    def server_config(self, names: Sequence[str]) -> dict[str, str]:
        def config(c: Any) -> dict[str, str]:
            out: dict[str, str] = {}
            for name in names:
                out.update({_text(k): _text(v) for k, v in dict(c.config_get(name)).items()})
            return out

        return cluster.weakest(self._on_masters(config))

    def data_marker(self) -> tuple[bytes | None, str]:
        """The marker, and the run id of the master that holds it (its restart without
        persistence loses the marker with its tasks)."""
        key = self.plans._key("marker")

        def read(c: Any) -> tuple[bytes | None, str]:
            return c.get(key), _text(c.info("server").get("run_id", ""))

        return self._on_masters(read, key)[0]

    # -- workflows: refused by name (see NO_WORKFLOWS)

    def wf_start(self, req: Any, now_ms: int) -> bool:
        raise InvalidOption(NO_WORKFLOWS)

    async def wf_start_async(self, req: Any, now_ms: int) -> bool:
        raise InvalidOption(NO_WORKFLOWS)


def _first_key(command: Command) -> str:
    """The key that places ``command``: an EVALSHA's first key, else its first argument."""
    name = str(command[0]).upper()
    at = 3 if name in ("EVALSHA", "EVAL") else 1
    return _text(command[at])


def _is_redirect(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and str(reply).startswith(("MOVED", "ASK"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["ClusterBroker"]
