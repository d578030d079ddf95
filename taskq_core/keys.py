"""Redis key names.

Every key of a queue carries the queue's name as a hash tag (``taskq:{default}:ready``), so
all keys one script touches for one queue live in one Redis Cluster slot. Scripts receive
every key they touch in ``KEYS``: the per-queue keys below, plus per-task result and
idempotency keys that the caller names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple


class QueueKeys(NamedTuple):
    """The fixed keys of one queue, by name, in the order the Lua scripts number them
    (``scripts.py`` hands the scripts this order as the table ``K``: ``KEYS[k + K.fence]``).
    A tuple: ``[*keys]`` is every key, in script order."""

    #: LIST of task ids; producers LPUSH, consumers RPOP (handed-back tasks RPUSH)
    ready: str
    #: ZSET id -> due time (ms)
    delayed: str
    #: ZSET id -> lease deadline (ms)
    leased: str
    #: HASH id -> message envelope (JSON)
    msg: str
    #: HASH id -> scheduled | failed | dead; none for a queued or running task (the hot path
    #: writes no state): it has a message, and it is running while it is leased
    state: str
    #: HASH id -> delivery counter, the fencing token of the current lease; a task on its
    #: first delivery has no entry (its fence is 1 while it is leased: see fetch.lua)
    fence: str
    #: HASH id -> deliveries accounted for: they had an outcome, or were handed back
    #: gracefully, so they do not count towards poison detection; the fence minus this is
    #: the deliveries that ended without one. Stored as ``unack`` (see STORED_SUFFIXES).
    accounted: str
    #: ZSET id -> time dead-lettered (ms)
    dead: str
    #: HASH id -> error record (JSON) of a dead-lettered task
    error: str
    #: HASH counter name -> value
    stats: str
    #: LIST of at most one token; idle workers block on it
    wake: str
    #: LIST of task ids whose last delivery ended without an outcome (lease lapsed, process
    #: crashed, internal error): leased only alone, to a worker that holds nothing else
    suspect: str
    # -- flow control (taskq_core/flow, docs/flow-control.md); empty while no task of the
    # queue declares a limit, an expiry or uniqueness
    #: HASH id -> the task's gate (JSON, flow/gates.py): its limits, expiry, unique key
    gate: str
    #: ZSET rate-limit key -> theoretical arrival time (ms, GCRA); an entry in the past
    #: means the same as none, so those are pruned: the state expires by itself
    rates: str
    #: HASH concurrency key -> slots held; ``h|<id>`` -> 1 while a lease holds its slots;
    #: ``w|<id>`` -> its member in ``capwait``; ``seq`` -> the waiters' counter
    slots: str
    #: ZSET (all scores 0) ``<concurrency key>\0<seq>\0<r|s><id>``: tasks waiting for a slot,
    #: in arrival order per key (r: back to ready, s: back to the suspects)
    capwait: str
    #: HASH unique key -> id of the task holding it
    unique: str
    #: ZSET unique key -> end of its window (ms)
    unique_until: str
    #: HASH id -> the latest progress a running task reported (JSON), written with the
    #: lease renewal; deleted at its outcome
    progress: str
    #: HASH id -> when an abort of the running task was asked for (ms); the worker learns
    #: of it at its next renewal; deleted at the task's outcome
    abort: str
    #: LIST of workflow steps' task ids that ended outside a settle carrying their step
    #: (dead-lettered as poison or unreadable, cancelled by id): each worker drains its
    #: queues' list on its tick, advancing their workflows (lua/wf_end.lua)
    wfout: str

    def pick(self, names: Sequence[str]) -> list[str]:
        """The keys called ``names``, in that order (what a script that takes only some of
        a queue's keys is given)."""
        return [getattr(self, name) for name in names]


#: The names of a queue's fixed keys, in script order.
QUEUE_KEY_NAMES: tuple[str, ...] = QueueKeys._fields
QUEUE_KEY_COUNT = len(QUEUE_KEY_NAMES)
#: Name in code -> suffix of the stored key, where the two differ. A key renamed in code keeps
#: its stored suffix, so that a worker of this version reads what an earlier one wrote (and
#: the two can run side by side during an upgrade): ``accounted`` was called ``unack``,
#: a name that said the opposite of what it holds.
STORED_SUFFIXES: dict[str, str] = {"accounted": "unack"}


def stored_suffix(name: str) -> str:
    """The suffix of the stored key of the queue key called ``name`` in code."""
    if name not in QUEUE_KEY_NAMES:
        raise ValueError(f"no queue key {name!r} (known: {', '.join(QUEUE_KEY_NAMES)})")
    return STORED_SUFFIXES.get(name, name)


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds key names under one prefix."""

    prefix: str = "taskq"

    def queue(self, queue: str) -> QueueKeys:
        """The fixed keys of ``queue``, by name and in script order."""
        tag = f"{self.prefix}:{{{queue}}}:"
        return QueueKeys(*(tag + stored_suffix(name) for name in QUEUE_KEY_NAMES))

    def wake(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:wake"

    def nudge(self, queue: str, waiter: str) -> str:
        """A list one waiter blocks on besides the wake lists, so it can be woken alone
        (in the slot of its first queue)."""
        return f"{self.prefix}:{{{queue}}}:nudge:{waiter}"

    def stats(self, queue: str) -> str:
        return f"{self.prefix}:{{{queue}}}:stats"

    def result(self, queue: str, task_id: str) -> str:
        return f"{self.prefix}:{{{queue}}}:result:{task_id}"

    def idempotency(self, queue: str, key: str) -> str:
        return f"{self.prefix}:{{{queue}}}:idem:{key}"

    def workflow(self, workflow_id: str) -> str:
        """HASH: a workflow's record (taskq_core/workflow/plan.py), in a slot of its own."""
        return f"{self.prefix}:{{wf:{workflow_id}}}:workflow"

    def done_channel(self, queue: str) -> str:
        """Pub/sub channel on which scripts announce tasks that reached a final state."""
        return f"{self.prefix}:{{{queue}}}:done"

    def counters(self, group: str) -> str:
        """HASH of free-form counters (e.g. enqueues per web route)."""
        return f"{self.prefix}:counters:{group}"

    def custom(self) -> str:
        """HASH of the application's custom metrics (observability/custom.py): their
        declarations, counter totals, histogram buckets and sums."""
        return f"{self.prefix}:custom"

    def custom_gauges(self) -> str:
        """SET of the custom gauge series (``<name>|<label values>``) ever set."""
        return f"{self.prefix}:custom:gauges"

    def custom_gauge(self, series: str) -> str:
        """ZSET of one custom gauge series: its latest value, scored by when it was set (a
        digest of the series names the key: label values may hold any character)."""
        digest = hashlib.sha1(series.encode(), usedforsecurity=False).hexdigest()[:24]
        return f"{self.prefix}:custom:gauge:{digest}"

    def queues(self) -> str:
        """SET of every queue name ever used under this prefix (for listings)."""
        return f"{self.prefix}:queues"

    def pattern(self) -> str:
        """A SCAN pattern matching every key under this prefix."""
        return f"{self.prefix}:*"
