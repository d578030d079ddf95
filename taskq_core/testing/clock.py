"""A clock for tests that moves only when told to."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from ..clock import ManualClock


class TestClock(ManualClock):
    """A :class:`~taskq_core.clock.ManualClock` that starts at the real time (so ETAs that
    tests compute from ``datetime.now()`` are in the future, as they would be) and moves
    by :meth:`advance`.

    Given to a TaskQueue (``TaskQueue(..., clock=clock)``), it is the clock of every due
    time, retry backoff and lease of that app, on the in-memory broker and on Redis alike
    (the app passes its time to the broker: see ``clock.script_ms``), and of its
    schedules; nothing becomes due until the test advances it.
    """

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, start: float | None = None) -> None:
        super().__init__(float(int(time.time())) if start is None else start)

    def advance(
        self,
        seconds: float | timedelta = 0,
        *,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
    ) -> None:
        """Move forward: ``advance(30)``, ``advance(hours=1)``, ``advance(timedelta(days=2))``."""
        step = seconds.total_seconds() if isinstance(seconds, timedelta) else seconds
        step += minutes * 60 + hours * 3600 + days * 86_400
        if step < 0:
            raise ValueError(f"a clock only moves forward: advance by {step:g} s refused")
        self.now += step

    def datetime(self) -> datetime:
        """The clock's time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now, UTC)
