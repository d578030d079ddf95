"""Time sources.

Every deadline taskq computes (leases, delays, retries, result TTLs) reads the clock of the
process that computes it through this interface, so that tests can drive time by hand.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch."""

    def time(self) -> float: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to; for tests."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ms(seconds: float) -> int:
    """Seconds to whole milliseconds, the unit stored in Redis."""
    return int(seconds * 1000)
