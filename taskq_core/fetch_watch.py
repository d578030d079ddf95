"""The fetch loop's watchdog: a worker notices when its own fetch loop stops making progress.

Every round trip of the fetch loop (a fetch, or an idle wait that fetches when it wakes) has
a bound: its blocking wait, plus the broker's bound for one call, plus a margin. The broker
enforces its own timeouts (see ``RedisBroker.call_bound``), so in practice a round trip
never outlives its bound; the watchdog is the second line for what the broker cannot see
(a library that waits where it should not, a future nobody completes). On each tick the
worker asks the watch; a round trip past its bound is abandoned (its future cancelled,
which the fetch loop takes as a failed round trip), the loop's connections are dropped and
the loop carries on with fresh ones.

The heartbeat carries :meth:`FetchWatch.record`, and health reports a worker whose fetch
loop has a round trip outstanding past its bound as *degraded* (see
``observability/health.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("taskq.worker")

#: seconds allowed beyond a round trip's own wait and the broker's bound (a loaded host)
MARGIN = 5.0


class FetchWatch:
    """The fetch loop's outstanding round trip, its last progress and its stalls."""

    __slots__ = (
        "_abandoned",
        "bound",
        "last_progress_ms",
        "pending",
        "since",
        "since_ms",
        "stalls",
    )

    def __init__(self, bound: float) -> None:
        #: seconds a round trip may stay outstanding
        self.bound = bound
        self.pending: asyncio.Future[Any] | None = None
        self.since = 0.0  # monotonic start of the pending round trip
        self.since_ms = 0  # the same, wall clock (for the heartbeat)
        self.last_progress_ms = int(time.time() * 1000)
        self.stalls = 0
        self._abandoned: asyncio.Future[Any] | None = None

    @staticmethod
    def bound_for(wait: float, call_bound: float) -> float:
        """The bound of a round trip that blocks up to ``wait`` seconds in the broker."""
        return wait + call_bound + MARGIN

    def begin(self, fut: asyncio.Future[Any]) -> None:
        """A round trip starts (``fut`` completes when it ends)."""
        self.pending = fut
        self.since = time.monotonic()
        self.since_ms = int(time.time() * 1000)

    def end(self) -> None:
        """The pending round trip ended (answered or failed): the loop is moving."""
        self.pending = None
        self.last_progress_ms = int(time.time() * 1000)

    async def watched(self, fut: asyncio.Future[T], broker: Any) -> T:
        """Await the round trip ``fut`` under this watch. One the watch abandons raises
        ``TimeoutError`` once the loop's connections are dropped; a cancellation of the
        caller itself propagates."""
        self.begin(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if not self.abandoned(fut):
                raise
            await self.recover(broker)
            # a cancellation has no text of its own: say what happened
            raise TimeoutError("round trip abandoned by the watchdog") from None
        finally:
            self.end()

    def overdue(self) -> bool:
        """Abandon the pending round trip if it is past its bound; True if it did."""
        fut = self.pending
        if fut is None or fut.done() or time.monotonic() - self.since <= self.bound:
            return False
        self.stalls += 1
        self._abandoned = fut
        fut.cancel()
        log.warning(
            "fetch round trip outstanding for %.1fs, past its bound of %.1fs: abandoned, "
            "the loop's connections are dropped and fetching goes on",
            time.monotonic() - self.since,
            self.bound,
        )
        return True

    def abandoned(self, fut: asyncio.Future[Any]) -> bool:
        """Whether ``fut`` was cancelled by this watch (rather than the loop itself)."""
        if self._abandoned is fut:
            self._abandoned = None
            return True
        return False

    async def recover(self, broker: Any) -> None:
        """After an abandoned round trip: drop the loop's connections (the link that left
        it unanswered is likely dead for the others too), so the next round trip starts on
        a fresh one."""
        reset = getattr(broker, "reset_async", None)
        if reset is None:
            return
        try:
            await asyncio.wait_for(reset(), 5.0)
        except Exception as exc:  # the next round trip finds out for itself
            log.warning("could not drop the fetch loop's connections: %s", type(exc).__name__)

    def record(self) -> dict[str, Any]:
        """The fetch loop's state for the heartbeat: when it last made progress, since when
        a round trip is outstanding (None: none), its bound, and how often it stalled."""
        return {
            "last_progress_ms": self.last_progress_ms,
            "pending_since_ms": self.since_ms if self.pending is not None else None,
            "bound_ms": int(self.bound * 1000),
            "stalls": self.stalls,
        }


def call_bound(broker: Any, socket_timeout: float) -> float:
    """The broker's bound for one call (``RedisBroker.call_bound``), else one derived from
    the configured socket timeout the same way."""
    bound = getattr(broker, "call_bound", None)
    return float(bound) if bound is not None else 2 * socket_timeout


def stalled(record: dict[str, Any], now_ms: int) -> bool:
    """Whether a heartbeat record shows a fetch round trip outstanding past its bound."""
    fetch = record.get("fetch")
    if not isinstance(fetch, dict):
        return False
    since, bound = fetch.get("pending_since_ms"), fetch.get("bound_ms")
    if not isinstance(since, int) or not isinstance(bound, int):
        return False
    return now_ms - since > bound
