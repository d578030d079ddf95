"""Time sources.

Whose clock decides what (docs/architecture.md, "Time"): leases, delays, retries' due times
and their promotion run on one clock, the broker's (Redis's ``TIME``), so that a host whose
clock is off cannot expire the leases of the others or hold tasks back. The app's clock
(``TaskQueue(clock=...)``) stamps records (``enqueued_at``, ``finished_at``), computes an
ETA's absolute due time, and drives schedules. A :class:`ManualClock` (or any clock that is
not a :class:`SystemClock`) is passed to the broker instead, so tests drive leases and due
times by hand.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall-clock time in seconds since the epoch."""

    def time(self) -> float: ...


class SystemClock:
    """The real clock. Brokers keep their own time for leases and due times (see
    :func:`script_ms`), so a subclass that reads another wall clock changes only the
    records' timestamps."""

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


def script_ms(clock: Clock) -> int:
    """The ``now_ms`` to pass to a broker: 0 ("use the broker's own clock") for a
    :class:`SystemClock`, this clock's time for any other (a test's :class:`ManualClock`)."""
    return 0 if isinstance(clock, SystemClock) else int(clock.time() * 1000)
