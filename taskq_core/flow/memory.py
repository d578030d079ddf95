"""The in-memory broker's flow control: what ``lua/_lib.lua``'s ``gate_admit`` and
``gate_end`` do in Redis, on one queue's state held in this process. The broker contract
suite (``tests/core/test_broker_contract.py``) runs the same flow-control tests on both.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

Admission = Literal["run", "expired"] | None


class _Scored(Protocol):
    def add(self, member: str, score: int) -> None: ...


class QueueLike(Protocol):
    """The parts of the in-memory broker's queue that flow control moves tasks between."""

    ready: deque[str]
    suspect: deque[str]
    state: dict[str, str]

    @property
    def delayed(self) -> _Scored: ...

    def incr(self, name: str, by: int = 1) -> None: ...


@dataclass(slots=True)
class Gates:
    """One queue's flow-control state (the Redis keys gate, rates, slots, capwait, unique
    and unique_until)."""

    gate: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: rate key -> theoretical arrival time (ms, GCRA)
    rates: dict[str, float] = field(default_factory=dict)
    #: concurrency key -> slots held, and the ids of the leases that hold theirs
    slots: dict[str, int] = field(default_factory=dict)
    holders: set[str] = field(default_factory=set)
    #: concurrency key -> (id, back to the suspects?) waiting for a slot, in arrival order
    capwait: dict[str, deque[tuple[str, bool]]] = field(default_factory=dict)
    waiting: dict[str, str] = field(default_factory=dict)  # id -> the key it waits for
    #: the broker's dead-lettering (a task whose gate is malformed), set by the broker
    dead_letter: Callable[[str, str, int], None] = lambda task_id, reason, now_ms: None
    #: unique key -> (holder id, end of its window in ms, or None)
    unique: dict[str, tuple[str, int | None]] = field(default_factory=dict)

    # -- enqueue

    def claim_unique(
        self, key: str, task_id: str, window_ms: int, now_ms: int, alive: Callable[[str], bool]
    ) -> str | None:
        """The id holding ``key`` (a live task, within its window), or None after making
        ``task_id`` its holder."""
        held = self.unique.get(key)
        if held is not None:
            holder, until = held
            if (until is None or until > now_ms) and alive(holder):
                return holder
        self.unique[key] = (task_id, now_ms + window_ms if window_ms > 0 else None)
        return None

    def store(self, task_id: str, data: bytes) -> None:
        if data:
            self.gate[task_id] = checked(data)

    # -- fetch

    def admit(
        self,
        q: QueueLike,
        task_id: str,
        now_ms: int,
        *,
        suspect: bool = False,
    ) -> tuple[Admission, int | None]:
        """As ``gate_admit``: ``("run", None)``, ``("expired", None)``, or ``(None, due)``
        after parking the task (``due``: when a rate limit lets it go, None while it waits
        for a slot). A task without a gate runs."""
        g = self.gate.get(task_id)
        if g is None:
            return "run", None
        if "bad" in g:
            reason = f"its flow-control gate is malformed: {g['bad']}"
            self.dead_letter(task_id, reason, now_ms)
            return None, None
        if "e" in g and now_ms >= g["e"]:
            return "expired", None
        for n, key in g.get("c", ()):
            if self.slots.get(key, 0) >= n:
                self.capwait.setdefault(key, deque()).append((task_id, suspect))
                self.waiting[task_id] = key
                q.state[task_id] = "waiting"
                q.incr("capped")
                return None, None
        if "r" in g and not suspect:
            allow_at, step, step_burst, tats = 0.0, 0.0, 1, []
            for count, period_ms, burst, key in g["r"]:
                interval = period_ms / count
                tat = max(self.rates.get(key, 0.0), now_ms)
                allow_at = max(allow_at, tat + interval - interval * burst)
                if interval > step:
                    step, step_burst = interval, burst
                tats.append((key, tat + interval))
            if allow_at > now_ms:
                # in line after the last one parked (as gate_admit in lua/_lib.lua)
                line = "p|" + g["r"][0][3]
                place = max(allow_at, self.rates.get(line, 0.0) + step)
                self.rates[line] = place
                # places closer than 10 ms share one due time, as many as the burst allows
                bucket = min(10.0, step * step_burst)
                due = math.ceil(place / bucket) * bucket if bucket > step else math.ceil(place)
                due = math.ceil(due)
                q.delayed.add(task_id, due)
                q.state[task_id] = "throttled"
                q.incr("throttled")
                return None, due
            self.rates.update(tats)
            # entries in the past mean the same as none
            for key in [k for k, tat in self.rates.items() if tat < now_ms - 1]:
                del self.rates[key]
        if "c" in g:
            for _, key in g["c"]:
                self.slots[key] = self.slots.get(key, 0) + 1
            self.holders.add(task_id)
        u = g.get("u")
        if u is not None and u[1] == "s":
            self.free_unique(task_id)
        return "run", None

    # -- the end of a lease, of a task

    def end(self, q: QueueLike, task_id: str) -> bool:
        """As ``gate_end``: the lease of ``task_id`` ended; its slots go to the first task
        waiting for each. Returns True when a waiter went back to its queue."""
        if task_id not in self.holders:
            return False
        self.holders.discard(task_id)
        woke = False
        for _, key in self.gate.get(task_id, {}).get("c", ()):
            left = self.slots.get(key, 0) - 1
            if left > 0:
                self.slots[key] = left
            else:
                self.slots.pop(key, None)
            waiters = self.capwait.get(key)
            if waiters:
                waiter, was_suspect = waiters.popleft()
                if not waiters:
                    del self.capwait[key]
                self.waiting.pop(waiter, None)
                q.state[waiter] = "queued"
                (q.suspect if was_suspect else q.ready).append(waiter)
                woke = True
        return woke

    def free_unique(self, task_id: str) -> None:
        g = self.gate.get(task_id)
        u = g.get("u") if g is not None else None
        if u is not None and self.unique.get(u[0], ("",))[0] == task_id:
            del self.unique[u[0]]

    def unpark(self, task_id: str) -> None:
        """A task waiting for a slot leaves the wait (cancelled)."""
        key = self.waiting.pop(task_id, None)
        if key is not None:
            waiters = self.capwait[key]
            for entry in list(waiters):
                if entry[0] == task_id:
                    waiters.remove(entry)
            if not waiters:
                del self.capwait[key]

    def forget(self, task_id: str) -> None:
        """The task's message is gone (finished, cancelled, purged): so is its gate."""
        self.gate.pop(task_id, None)


def _count(v: object) -> bool:
    return type(v) is int and v >= 1


def _key(v: object) -> bool:
    return type(v) is str and 0 < len(v) <= 512


def checked(data: bytes) -> dict[str, Any]:
    """A stored gate, or ``{"bad": why}`` when it is not what taskq_core/flow writes (as
    ``decode_gate`` in lua/_lib.lua: such a task is dead-lettered, nothing else stops)."""
    try:
        g = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {"bad": "not a JSON object"}
    if g == []:
        return {}  # cjson cannot tell [] from {}: an empty gate either way
    if type(g) is not dict:
        return {"bad": "not a JSON object"}
    r, c, u = g.get("r"), g.get("c"), g.get("u")
    if r is not None and not (
        type(r) is list
        and r
        and all(
            type(x) is list
            and len(x) == 4
            and _count(x[0])
            and _count(x[1])
            and _count(x[2])
            and _key(x[3])
            for x in r
        )
    ):
        return {"bad": "r"}
    if c is not None and not (
        type(c) is list
        and c
        and all(type(x) is list and len(x) == 2 and _count(x[0]) and _key(x[1]) for x in c)
    ):
        return {"bad": "c"}
    if g.get("e") is not None and type(g["e"]) not in (int, float):
        return {"bad": "e"}
    if u is not None and not (
        type(u) is list and len(u) == 2 and _key(u[0]) and u[1] in ("s", "f")
    ):
        return {"bad": "u"}
    return g
