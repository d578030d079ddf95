"""Each Redis operation described once, as a plan: the commands to send in one round trip
and a function that turns the replies into a result. ``RedisBroker`` runs a plan with the
blocking client or the asyncio client; nothing here does I/O, so the sync and async paths
cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..keys import Keys, QueueKeys
from . import resp, scripts
from .base import (
    RELEASE_ERROR_TYPES,
    SNAPSHOT_SERIES,
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
    parse_stats,
    queue_stats,
)

T = TypeVar("T")
Command = tuple[Any, ...]


@dataclass(slots=True)
class ScriptCall:
    """A script call; the runner sends it as EVALSHA and loads the script if needed."""

    script: scripts.Script
    keys: Sequence[str]
    args: list[Any]
    #: the packed EVALSHA, SHA, key count and keys of this call (``resp.head``), when the
    #: plan keeps them ready; :meth:`packed` then packs only ``args``
    head: bytes = b""
    #: how many of ``args``, first, are keys too (a task's own keys, after the queue's):
    #: the head then stays the same for every task
    arg_keys: int = 0

    def command(self) -> Command:
        nkeys = len(self.keys) + self.arg_keys
        return ("EVALSHA", self.script.sha, nkeys, *self.keys, *self.args)

    def packed(self) -> bytes:
        """The command in the Redis protocol."""
        if self.head:
            return self.head + b"".join([resp.bulk(arg) for arg in self.args])
        return resp.pack(self.command())


@dataclass(slots=True)
class Plan(Generic[T]):
    commands: list[ScriptCall | Command]
    parse: Callable[[list[Any]], T]
    #: parse takes raw replies (no redis-py response callbacks): the broker may send it the
    #: lean way (see ``RedisBroker.run``)
    lean: bool = False
    #: its last command is a WAIT for replicas (RedisBroker.replicated): sent again with
    #: any command that had to be sent again (a script the server had lost)
    waits: bool = False


def _ms_or_none(value: Any) -> int | None:
    """A stored time in ms, or None when missing or not a number (written by something
    else than taskq: ignored rather than failing the read)."""
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _group(items: Sequence[Any]) -> dict[str, list[int]]:
    """Indexes of items grouped by their ``queue``, keeping first-seen queue order."""
    groups: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.queue, []).append(i)
    return groups


class Plans:
    """Builds plans for one key prefix and one set of broker settings."""

    def __init__(self, keys: Keys, settings: Settings) -> None:
        self.keys = keys
        self.settings = settings
        self._qkeys: dict[str, QueueKeys] = {}
        self._enqueue_keys: dict[str, list[str]] = {}
        self._one: dict[str, tuple[list[str], bytes, str]] = {}
        self.seen_queues: set[str] = set()

    def qkeys(self, queue: str) -> QueueKeys:
        """The fixed keys of ``queue`` (built once per queue)."""
        found = self._qkeys.get(queue)
        if found is None:
            found = self._qkeys[queue] = self.keys.queue(queue)
        return found

    def _enqueue_queue_keys(self, queue: str) -> list[str]:
        found = self._enqueue_keys.get(queue)
        if found is None:
            found = self._enqueue_keys[queue] = self.qkeys(queue).pick(scripts.ENQUEUE.queue_keys)
        return found

    # -- producers

    def enqueue(self, items: Sequence[EnqueueItem], now_ms: int) -> Plan[list[str]]:
        if len(items) == 1:
            one = items[0]
            if (
                one.delay_ms <= 0
                and one.idempotency_key is None
                and not one.gate
                and (one.due_ms == 0 or (now_ms > 0 and one.due_ms <= now_ms))
            ):
                return self._enqueue_one(one)
        groups = _group(items)
        commands: list[ScriptCall | Command] = []
        new_queues = [queue for queue in groups if queue not in self.seen_queues]
        result = self.keys.result
        for queue, idx in groups.items():
            # what enqueue.lua touches: some keys of the queue, each task's result key (a
            # finished task's id is known by it), the idempotency keys
            keys = [*self._enqueue_queue_keys(queue), *(result(queue, items[i].id) for i in idx)]
            args: list[Any] = [now_ms, self.settings.idempotency_ttl_ms, len(idx)]
            for i in idx:
                item = items[i]
                idem_at = 0  # the 1-based index of its idempotency key in KEYS, if any
                if item.idempotency_key is not None:
                    keys.append(self.keys.idempotency(queue, item.idempotency_key))
                    idem_at = len(keys)
                args += (
                    item.id,
                    item.task,
                    item.body,
                    item.due_ms,
                    item.delay_ms,
                    idem_at,
                    item.gate,
                    item.unique_key or "",
                    item.unique_window_ms,
                )
            commands.append(ScriptCall(scripts.ENQUEUE, keys, args))
        if new_queues:
            # recorded once per process per queue, so listings find custom queues
            commands.append(("SADD", self.keys.queues(), *new_queues))

        def parse(replies: list[Any]) -> list[str]:
            self.seen_queues.update(new_queues)
            out = [""] * len(items)
            for (_, idx), reply in zip(groups.items(), replies, strict=False):
                for i, task_id in zip(idx, reply, strict=True):
                    out[i] = _s(task_id)
            return out

        return Plan(commands, parse, lean=True)

    def _enqueue_one(self, item: EnqueueItem) -> Plan[list[str]]:
        """One task due now without an idempotency key: what a web request enqueues, with a
        script of three commands (``enqueue_one.lua``)."""
        queue = item.queue
        keys, head, results = self._one.get(queue) or self._enqueue_one_head(queue)
        # the task's result key, last of the keys: a finished task's id is known by it
        args = [results + item.id, item.id, "enqueued|" + item.task, item.body]
        call = ScriptCall(scripts.ENQUEUE_ONE, keys, args, head, 1)
        if queue in self.seen_queues:
            return Plan([call], lambda replies: [item.id], lean=True)

        def parse(replies: list[Any]) -> list[str]:
            self.seen_queues.add(queue)
            return [item.id]

        return Plan([call, ("SADD", self.keys.queues(), queue)], parse, lean=True)

    def _enqueue_one_head(self, queue: str) -> tuple[list[str], bytes, str]:
        keys = self.qkeys(queue).pick(scripts.ENQUEUE_ONE.queue_keys)
        found = self._one[queue] = (
            keys,
            resp.head(
                ["EVALSHA", scripts.ENQUEUE_ONE.sha, len(keys) + 1, *keys], 3 + len(keys) + 1 + 3
            ),
            self.keys.result(queue, ""),  # + the task id: its result key
        )
        return found

    # -- workers

    def _settle_calls(
        self, outcomes: Sequence[Outcome], now_ms: int, stats: dict[str, dict[str, int]] | None
    ) -> tuple[list[ScriptCall | Command], list[list[int]]]:
        groups = _group(outcomes)
        for queue in stats or {}:
            groups.setdefault(queue, [])
        commands: list[ScriptCall | Command] = []
        order: list[list[int]] = []
        for queue, idx in groups.items():
            keys = list(self.qkeys(queue))
            queue_stats = (stats or {}).get(queue, {})
            args: list[Any] = [now_ms, self.settings.result_ttl_ms, len(idx), len(queue_stats)]
            for i in idx:
                outcome = outcomes[i]
                keys.append(self.keys.result(queue, outcome.id))
                extra = (
                    b"%d|%s" % (outcome.retry_delay_ms, outcome.retry_body)
                    if outcome.kind == "retry"
                    else b""
                )
                args += (
                    outcome.id,
                    outcome.fence,
                    outcome.kind,
                    outcome.task,
                    outcome.record,
                    extra,
                )
            for name, value in queue_stats.items():
                args += (name, value)
            steps = self._steps(keys, args, [(n, outcomes[i]) for n, i in enumerate(idx, 1)])
            commands.append(ScriptCall(scripts.SETTLE_WF if steps else scripts.SETTLE, keys, args))
            order.append(idx)
        return commands, order

    def _steps(self, keys: list[str], args: list[Any], numbered: list[tuple[int, Outcome]]) -> bool:
        """The workflow steps among a settle's outcomes (settle.lua's last ARGV section):
        each workflow's record and its queues' keys go into ``keys`` once. True if any."""
        steps = [(n, o.step) for n, o in numbered if o.step is not None]
        if not steps:
            return False
        args.append(len(steps))
        placed: dict[str, tuple[int, int]] = {}
        for n, step in steps:
            where = placed.get(step.workflow)
            if where is None:
                keys.append(self.keys.workflow(step.workflow))
                where = placed[step.workflow] = (len(keys), len(keys))
                for queue in step.queues:
                    keys += self.qkeys(queue)
            args += (n, where[0], step.workflow, where[1], step.step, step.status, step.payload)
        return True

    def settle(
        self, outcomes: Sequence[Outcome], now_ms: int, stats: dict[str, dict[str, int]] | None
    ) -> Plan[list[Outcome]]:
        commands, order = self._settle_calls(outcomes, now_ms, stats)

        def parse(replies: list[Any]) -> list[Outcome]:
            return _stale(outcomes, order, replies)

        return Plan(commands, parse, lean=True)

    def fetch(
        self,
        queues: Sequence[str],
        want: int,
        now_ms: int,
        outcomes: Sequence[Outcome],
        stats: dict[str, dict[str, int]] | None,
        *,
        alone: bool = False,
    ) -> Plan[tuple[FetchResult, list[Outcome]]]:
        """Settle finished work and lease new work in one round trip (``alone``: the caller
        holds no lease, so it may be given a suspect; see ``fetch.lua``)."""
        commands, order = (
            self._settle_calls(outcomes, now_ms, stats) if (outcomes or stats) else ([], [])
        )
        keys: list[str] = []
        for queue in queues:
            keys += self.qkeys(queue)
        settings = self.settings
        args = [
            now_ms,
            settings.lease_ms,
            want,
            settings.max_deliveries,
            len(queues),
            1 if alone else 0,
        ]
        commands.append(ScriptCall(scripts.FETCH, keys, args))
        n_settle = len(order)

        def parse(replies: list[Any]) -> tuple[FetchResult, list[Outcome]]:
            stale = _stale(outcomes, order, replies[:n_settle])
            reply = replies[n_settle]
            # next due, now, suspects waiting, suspect batch; then (queue index, id, fence,
            # message) per delivery, flat
            deliveries = [
                Delivery(queues[int(index)], _s(task_id), int(fence), body)
                for index, task_id, fence, body in zip(
                    reply[4::4], reply[5::4], reply[6::4], reply[7::4], strict=True
                )
            ]
            next_due = int(reply[0])
            result = FetchResult(
                deliveries,
                next_due if next_due >= 0 else None,
                int(reply[1]),
                int(reply[2]),
                reply[3] == 1,
            )
            return result, stale

        return Plan(commands, parse, lean=True)

    def wait_keys(self, queues: Sequence[str], nudge: str | None) -> list[str]:
        """The lists an idle worker blocks on: its queues' wake lists and its nudge list."""
        keys = [self.keys.wake(queue) for queue in queues]
        if nudge is not None:
            keys.append(self.keys.nudge(queues[0], nudge))
        return keys

    def wait_fetch(
        self,
        queues: Sequence[str],
        timeout: float,
        nudge: str | None,
        want: int,
        now_ms: int,
        *,
        alone: bool = False,
    ) -> Plan[tuple[bool, FetchResult]]:
        """Block on the wake lists, then lease: one round trip (see ``wait_fetch_async``)."""
        fetch = self.fetch(queues, want, now_ms, (), None, alone=alone)
        commands: list[ScriptCall | Command] = [
            ("BLPOP", *self.wait_keys(queues, nudge), timeout),
            *fetch.commands,
        ]

        def parse(replies: list[Any]) -> tuple[bool, FetchResult]:
            result, _ = fetch.parse(replies[1:])
            return replies[0] is not None, result

        return Plan(commands, parse, lean=True)

    def renew(
        self,
        leases: Sequence[Lease],
        now_ms: int,
        progress: Mapping[tuple[str, str], bytes] | None = None,
    ) -> Plan[Renewal]:
        groups = _group(leases)
        commands: list[ScriptCall | Command] = []
        for queue, idx in groups.items():
            reported = [
                (leases[i].id, progress[(queue, leases[i].id)])
                for i in idx
                if progress and (queue, leases[i].id) in progress
            ]
            args: list[Any] = [now_ms, self.settings.lease_ms, len(reported)]
            for pair in reported:
                args += pair
            for i in idx:
                args += (leases[i].id, leases[i].fence)
            commands.append(ScriptCall(scripts.RENEW, self.qkeys(queue), args))

        def parse(replies: list[Any]) -> Renewal:
            out = Renewal()
            for (_, idx), (lost, aborting) in zip(groups.items(), replies, strict=True):
                gone = {_s(task_id) for task_id in lost}
                asked = {_s(task_id) for task_id in aborting}
                out.lost += [leases[i] for i in idx if leases[i].id in gone]
                out.aborting += [leases[i] for i in idx if leases[i].id in asked]
            return out

        return Plan(commands, parse)

    def release(
        self, leases: Sequence[Lease], mode: ReleaseMode, reason: str, now_ms: int
    ) -> Plan[int]:
        groups = _group(leases)
        commands: list[ScriptCall | Command] = []
        kind = RELEASE_ERROR_TYPES.get(mode, "")
        if mode != "graceful" and not kind:
            raise ValueError(f"release mode must be graceful, crashed or unexplained: {mode!r}")
        for queue, idx in groups.items():
            args: list[Any] = [kind, reason, now_ms, self.settings.max_deliveries]
            for i in idx:
                args += (leases[i].id, leases[i].fence)
            commands.append(ScriptCall(scripts.RELEASE, self.qkeys(queue), args))
        return Plan(commands, lambda replies: sum(int(reply) for reply in replies))

    # -- handles and administration

    def get(self, queue: str, task_id: str) -> Plan[TaskState | None]:
        keys = self.qkeys(queue)
        commands: list[ScriptCall | Command] = [
            ("GET", self.keys.result(queue, task_id)),
            ("HGET", keys.state, task_id),
            ("HGET", keys.msg, task_id),
            ("HGET", keys.fence, task_id),
            ("HGET", keys.error, task_id),
            ("ZSCORE", keys.leased, task_id),
            ("HGET", keys.progress, task_id),
            ("HGET", keys.abort, task_id),
        ]

        def parse(replies: list[Any]) -> TaskState | None:
            record, state, message, fence, error, leased, progress, abort = replies
            if state is None and message is not None:
                # queued and running tasks have no state entry (see keys.py)
                state = "running" if leased is not None else "queued"
            if record is None and state is None:
                return None
            if record is None and error is not None:
                record = error
            return TaskState(
                task_id,
                queue,
                _s(state) if state is not None else None,
                record,
                message,
                # a leased task without a fence entry is on its first delivery (fetch.lua)
                int(fence) if fence is not None else (1 if leased is not None else 0),
                progress,
                _ms_or_none(abort),
            )

        return Plan(commands, parse)

    def cancel(
        self, queue: str, task_id: str, record: bytes, abort: bool = False, now_ms: int = 0
    ) -> Plan[str]:
        keys = [*self.qkeys(queue), self.keys.result(queue, task_id)]
        args = [task_id, self.settings.result_ttl_ms, record, 1 if abort else 0, now_ms]
        call = ScriptCall(scripts.CANCEL, keys, args)
        return Plan([call], lambda replies: _s(replies[0]))

    def dead_page(self, queue: str, offset: int, limit: int) -> Plan[list[tuple[str, int]]]:
        dead = self.qkeys(queue).dead
        return Plan(
            [("ZRANGE", dead, offset, offset + limit - 1, "WITHSCORES")],
            lambda replies: [
                (_s(member), int(float(score))) for member, score in _pairs(replies[0])
            ],
        )

    def dead_details(self, queue: str, page: list[tuple[str, int]]) -> Plan[list[DeadTask]]:
        keys = self.qkeys(queue)
        ids = [task_id for task_id, _ in page]
        if not ids:
            return Plan([], lambda replies: [])
        commands: list[ScriptCall | Command] = [
            ("HMGET", keys.msg, *ids),
            ("HMGET", keys.error, *ids),
            ("HMGET", keys.state, *ids),
        ]

        def parse(replies: list[Any]) -> list[DeadTask]:
            msgs, errors, states = replies
            return [
                DeadTask(task_id, queue, at, _s(state) if state else "dead", message, error)
                for (task_id, at), message, error, state in zip(
                    page, msgs, errors, states, strict=True
                )
            ]

        return Plan(commands, parse)

    def dead_retry(self, queue: str, ids: Sequence[str]) -> Plan[int]:
        keys = [*self.qkeys(queue), *(self.keys.result(queue, task_id) for task_id in ids)]
        call = ScriptCall(scripts.DEAD_RETRY, keys, list(ids))
        return Plan([call], lambda replies: int(replies[0]))

    def dead_purge(self, queue: str, ids: Sequence[str]) -> Plan[int]:
        call = ScriptCall(scripts.DEAD_PURGE, self.qkeys(queue), list(ids))
        return Plan([call], lambda replies: int(replies[0]))

    def queue_info(self, queues: Sequence[str]) -> Plan[list[tuple[QueueInfo, str | None]]]:
        commands: list[ScriptCall | Command] = []
        for queue in queues:
            keys = self.qkeys(queue)
            commands += [
                ("LLEN", keys.ready),
                ("ZCARD", keys.delayed),
                ("ZCARD", keys.leased),
                ("ZCARD", keys.dead),
                ("LINDEX", keys.ready, -1),
                ("HGETALL", keys.stats),
                ("LLEN", keys.suspect),  # suspects wait too (counted as ready)
                ("ZCARD", keys.capwait),  # waiting for a concurrency slot (flow control)
            ]

        def parse(replies: list[Any]) -> list[tuple[QueueInfo, str | None]]:
            out = []
            for position, queue in enumerate(queues):
                at = position * 8
                ready, delayed, leased, dead, oldest, stats, suspects, waiting = replies[
                    at : at + 8
                ]
                info = QueueInfo(
                    queue,
                    int(ready) + int(suspects),
                    int(delayed),
                    int(leased),
                    int(dead),
                    None,
                    queue_stats(_as_dict(stats)),
                    int(waiting),
                )
                out.append((info, _s(oldest) if oldest is not None else None))
            return out

        return Plan(commands, parse)

    def incr_counters(self, group: str, counts: dict[str, int]) -> Plan[None]:
        key = self.keys.counters(group)
        commands: list[ScriptCall | Command] = [
            ("HINCRBY", key, name, value) for name, value in counts.items()
        ]
        return Plan(commands, lambda replies: None)

    def read_counters(self, group: str) -> Plan[dict[str, int]]:
        return Plan([("HGETALL", self.keys.counters(group))], lambda r: parse_stats(_as_dict(r[0])))

    def messages(self, pairs: Sequence[tuple[str, str]]) -> Plan[list[bytes | None]]:
        commands: list[ScriptCall | Command] = [
            ("HGET", self.qkeys(queue).msg, task_id) for queue, task_id in pairs
        ]
        return Plan(commands, list)

    # -- observability: heartbeats, alert state, SLA windows, locks
    # These keys are cluster-wide, not per queue: ``{prefix}:workers`` (ZSET id -> expiry ms),
    # ``{prefix}:worker:{id}`` (JSON, with a TTL), ``{prefix}:alerts`` (HASH key -> JSON),
    # ``{prefix}:alerts:history`` (LIST, newest first), ``{prefix}:snapshots`` (ZSET JSON ->
    # time ms) and ``{prefix}:lock:{name}``.

    def _key(self, *parts: str) -> str:
        return ":".join((self.keys.prefix, *parts))

    def put_heartbeat(self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int) -> Plan[None]:
        commands: list[ScriptCall | Command] = [
            ("ZADD", self._key("workers"), now_ms + ttl_ms, worker_id),
            ("SET", self._key("worker", worker_id), record, "PX", ttl_ms),
        ]
        return Plan(commands, lambda r: None)

    def drop_heartbeat(self, worker_id: str) -> Plan[None]:
        commands: list[ScriptCall | Command] = [
            ("ZREM", self._key("workers"), worker_id),
            ("DEL", self._key("worker", worker_id)),
        ]
        return Plan(commands, lambda r: None)

    def heartbeat_ids(self) -> Plan[list[str]]:
        return Plan([("ZRANGE", self._key("workers"), 0, -1)], lambda r: [_s(m) for m in r[0]])

    def heartbeat_records(self, ids: Sequence[str]) -> Plan[list[bytes | None]]:
        # GET per key rather than MGET: the keys need not share a cluster slot
        commands: list[ScriptCall | Command] = [("GET", self._key("worker", i)) for i in ids]
        return Plan(commands, list)

    def prune_heartbeats(self, ids: Sequence[str]) -> Plan[None]:
        return Plan([("ZREM", self._key("workers"), *ids)], lambda r: None)

    def server_info(self) -> Plan[dict[str, Any]]:
        return Plan([("INFO",)], lambda r: dict(r[0]))

    def server_config(self, names: Sequence[str]) -> Plan[dict[str, str]]:
        # one CONFIG GET per name: Redis before 7 takes a single pattern
        def parse(r: list[Any]) -> dict[str, str]:
            out: dict[str, str] = {}
            for reply in r:
                pairs = _as_dict(reply)
                out.update({_s(k): _s(v) for k, v in pairs.items()})
            return out

        return Plan([("CONFIG", "GET", n) for n in names], parse)

    def data_marker(self) -> Plan[tuple[bytes | None, str]]:
        def parse(r: list[Any]) -> tuple[bytes | None, str]:
            return r[0], _s(dict(r[1]).get("run_id", ""))

        return Plan([("GET", self._key("marker")), ("INFO", "server")], parse)

    def put_data_marker(self, value: bytes) -> Plan[None]:
        return Plan([("SET", self._key("marker"), value)], lambda r: None)

    def try_lock(self, name: str, ttl_ms: int) -> Plan[bool]:
        command = ("SET", self._key("lock", name), "1", "NX", "PX", ttl_ms)
        return Plan([command], lambda r: bool(r[0]))

    def alerts_read(self, history: int) -> Plan[tuple[dict[str, bytes], list[bytes]]]:
        commands: list[ScriptCall | Command] = [
            ("HGETALL", self._key("alerts")),
            ("LRANGE", self._key("alerts", "history"), 0, history - 1),
        ]

        def parse(r: list[Any]) -> tuple[dict[str, bytes], list[bytes]]:
            return {_s(k): v for k, v in _as_dict(r[0]).items()}, list(r[1])

        return Plan(commands, parse)

    def alerts_write(
        self, put: dict[str, bytes], drop: Sequence[str], events: Sequence[bytes], keep: int
    ) -> Plan[None]:
        active, history = self._key("alerts"), self._key("alerts", "history")
        commands: list[ScriptCall | Command] = []
        if put:
            commands.append(("HSET", active, *[x for kv in put.items() for x in kv]))
        if drop:
            commands.append(("HDEL", active, *drop))
        if events:
            commands += [("LPUSH", history, *events), ("LTRIM", history, 0, keep - 1)]
        return Plan(commands, lambda r: None)

    def snapshot_add(
        self, at_ms: int, data: bytes, keep_from_ms: int, series: str = "snapshots"
    ) -> Plan[None]:
        key = self._key(_series(series))
        commands: list[ScriptCall | Command] = [
            ("ZADD", key, at_ms, data),
            ("ZREMRANGEBYSCORE", key, "-inf", f"({keep_from_ms}"),
        ]
        return Plan(commands, lambda r: None)

    # the autoscaler records: ``{prefix}:autoscaler`` (HASH supervisor id -> JSON)

    def put_autoscaler(self, supervisor_id: str, record: bytes) -> Plan[None]:
        return Plan([("HSET", self._key("autoscaler"), supervisor_id, record)], lambda r: None)

    def drop_autoscaler(self, supervisor_ids: Sequence[str]) -> Plan[None]:
        return Plan([("HDEL", self._key("autoscaler"), *supervisor_ids)], lambda r: None)

    def autoscaler_records(self) -> Plan[dict[str, bytes]]:
        return Plan(
            [("HGETALL", self._key("autoscaler"))],
            lambda r: {_s(k): v for k, v in _as_dict(r[0]).items()},
        )

    def snapshots(self, from_ms: int, series: str = "snapshots") -> Plan[list[tuple[int, bytes]]]:
        command = ("ZRANGEBYSCORE", self._key(_series(series)), from_ms, "+inf", "WITHSCORES")
        return Plan([command], lambda r: [(int(float(sc)), m) for m, sc in _pairs(r[0])])


def _series(name: str) -> str:
    """The key name of a snapshot series (``{prefix}:snapshots``, ``{prefix}:history``)."""
    if name not in SNAPSHOT_SERIES:
        raise ValueError(f"no snapshot series {name!r} (known: {', '.join(SNAPSHOT_SERIES)})")
    return name


def _stale(
    outcomes: Sequence[Outcome], order: list[list[int]], replies: list[Any]
) -> list[Outcome]:
    stale: list[Outcome] = []
    for idx, reply in zip(order, replies, strict=True):
        stale += [outcomes[idx[int(pos) - 1]] for pos in reply]
    return stale


def _pairs(flat: Any) -> list[tuple[Any, Any]]:
    if flat and isinstance(flat[0], list | tuple):
        return [(a, b) for a, b in flat]
    return list(zip(flat[::2], flat[1::2], strict=True))


def _as_dict(raw: Any) -> dict[Any, Any]:
    if isinstance(raw, dict):
        return raw
    return dict(_pairs(raw))
