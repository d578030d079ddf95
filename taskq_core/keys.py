"""Redis key names.

Every key of a queue carries the queue's name as a hash tag (``taskq:{default}:ready``), so
all keys one script touches for one queue live in one Redis Cluster slot. Scripts receive
every key they touch in ``KEYS``: the per-queue keys below, plus per-task result and
idempotency keys that the caller names.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The fixed keys of one queue, in the order the Lua scripts expect them.
QUEUE_KEY_NAMES: tuple[str, ...] = (
    "ready",  # LIST of task ids; producers LPUSH, consumers RPOP (handed-back tasks RPUSH)
    "delayed",  # ZSET id -> due time (ms)
    "leased",  # ZSET id -> lease deadline (ms)
    "msg",  # HASH id -> message envelope (JSON)
    # HASH id -> scheduled | failed | dead; none for a queued or running task (the hot path
    # writes no state): it has a message, and it is running while it is leased
    "state",
    # HASH id -> delivery counter, the fencing token of the current lease; a task on its
    # first delivery has no entry (its fence is 1 while it is leased: see fetch.lua)
    "fence",
    # HASH id -> deliveries that do not count towards poison detection (they had an
    # outcome, or were handed back gracefully); the fence minus this is the deliveries that
    # ended without one
    "unack",
    "dead",  # ZSET id -> time dead-lettered (ms)
    "error",  # HASH id -> error record (JSON) of a dead-lettered task
    "stats",  # HASH counter name -> value
    "wake",  # LIST of at most one token; idle workers block on it
    # LIST of task ids whose last delivery ended without an outcome (lease lapsed, process
    # crashed, internal error): leased only alone, to a worker that holds nothing else
    "suspect",
)
QUEUE_KEY_COUNT = len(QUEUE_KEY_NAMES)


@dataclass(frozen=True, slots=True)
class Keys:
    """Builds key names under one prefix."""

    prefix: str = "taskq"

    def queue(self, queue: str) -> list[str]:
        """The fixed keys of ``queue``, in script order."""
        tag = f"{self.prefix}:{{{queue}}}:"
        return [tag + name for name in QUEUE_KEY_NAMES]

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

    def done_channel(self, queue: str) -> str:
        """Pub/sub channel on which scripts announce tasks that reached a final state."""
        return f"{self.prefix}:{{{queue}}}:done"

    def counters(self, group: str) -> str:
        """HASH of free-form counters (e.g. enqueues per web route)."""
        return f"{self.prefix}:counters:{group}"

    def queues(self) -> str:
        """SET of every queue name ever used under this prefix (for listings)."""
        return f"{self.prefix}:queues"

    def pattern(self) -> str:
        """A SCAN pattern matching every key under this prefix."""
        return f"{self.prefix}:*"
