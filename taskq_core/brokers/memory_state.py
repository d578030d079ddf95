"""The in-memory broker's data: a sorted set, and one queue's state (the keys of
``keys.QueueKeys``, as Python containers)."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

from ..flow.memory import Gates


class Scored:
    """A sorted set: member -> score, with ordered access by score."""

    def __init__(self) -> None:
        self.score: dict[str, int] = {}
        self._order: list[tuple[int, str]] = []

    def add(self, member: str, score: int) -> None:
        self.remove(member)
        self.score[member] = score
        bisect.insort(self._order, (score, member))

    def remove(self, member: str) -> bool:
        old = self.score.pop(member, None)
        if old is None:
            return False
        at = bisect.bisect_left(self._order, (old, member))
        del self._order[at]
        return True

    def upto(self, limit_score: int, count: int) -> list[str]:
        out: list[str] = []
        for score, member in self._order:
            if score > limit_score or len(out) >= count:
                break
            out.append(member)
        return out

    def first(self) -> tuple[int, str] | None:
        return self._order[0] if self._order else None

    def page(self, offset: int, limit: int) -> list[tuple[str, int]]:
        return [(member, score) for score, member in self._order[offset : offset + limit]]

    def __len__(self) -> int:
        return len(self.score)

    def __contains__(self, member: object) -> bool:
        return member in self.score


@dataclass
class QueueState:
    ready: deque[str] = field(default_factory=deque)  # appendleft = LPUSH, pop = RPOP
    delayed: Scored = field(default_factory=Scored)
    leased: Scored = field(default_factory=Scored)
    msg: dict[str, bytes] = field(default_factory=dict)
    state: dict[str, str] = field(default_factory=dict)
    fence: dict[str, int] = field(default_factory=dict)
    # id -> deliveries without an outcome (since its last outcome, graceful hand-backs not
    # counted): what the poison rule counts. Redis keeps the complement instead (the
    # ``accounted`` key, the fence minus it), so that a delivery writes nothing there
    unaccounted: dict[str, int] = field(default_factory=dict)
    dead: Scored = field(default_factory=Scored)
    error: dict[str, bytes] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)
    wake: bool = False
    suspect: deque[str] = field(default_factory=deque)  # appendleft = LPUSH, pop = RPOP
    gates: Gates = field(default_factory=Gates)  # flow control (taskq_core/flow/memory.py)
    progress: dict[str, bytes] = field(default_factory=dict)  # id -> latest progress (JSON)
    abort: dict[str, int] = field(default_factory=dict)  # id -> when an abort was asked (ms)
    #: workflow steps' task ids that ended outside a settle carrying their step
    wfout: list[str] = field(default_factory=list)

    def incr(self, name: str, by: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + by
