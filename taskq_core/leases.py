"""How long a worker may trust the leases it holds, by its own monotonic clock.

A lease ends ``lease_seconds`` after Redis ran the fetch (or renewal) that set it, which was
after the worker sent that call: so the call's send time plus the lease, less a margin, is
a deadline the lease is certain to outlive. A delivery leased ahead and still waiting in
the worker's buffer past that deadline (the worker was frozen or starved, and its renewals
with it) may already have been leased and run by another worker: it must not start.

The renewal thread moves each held lease's deadline on when a renewal succeeds, and counts
as lost only the leases the worker still holds after the call (a task settled while the
renewal was under way is no longer in the leased set, and was not lost).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Protocol

from .brokers.base import Broker, Lease, Renewal

#: the most the margin can be: a lease's deadline is trusted up to this much before its end
MAX_MARGIN = 1.0


class Held(Protocol):
    """A lease the worker holds, with the monotonic time until which it is sure to hold it."""

    lease: Lease
    until: float
    #: progress the task reported since the last renewal (JSON), sent with the next one
    progress: bytes | None


class LeaseClock:
    """The deadlines of one worker's leases (``lease_seconds`` long)."""

    __slots__ = ("lease", "margin")

    def __init__(self, lease_seconds: float) -> None:
        self.lease = lease_seconds
        # a tenth of the lease, at most MAX_MARGIN: room for Redis's and the host's clocks
        # to run at slightly different rates, and for a start that comes just after
        self.margin = min(MAX_MARGIN, lease_seconds / 10)

    def until(self, sent: float) -> float:
        """The deadline of a lease set by a call sent at monotonic time ``sent``."""
        return sent + self.lease - self.margin

    def renew(self, broker: Broker, held: Mapping[tuple[str, str], Held], now_ms: int) -> Renewal:
        """Renew every lease in ``held`` (one round trip, which also carries the progress
        the tasks reported since the last one); returns the leases lost, those the broker
        refused that ``held`` still holds (same queue, id and fence) after the call, and
        those still held whose task someone asked to abort. The deadlines of the renewed
        ones move on. Broker errors propagate."""
        # one copy in C, atomic under the GIL: the loop's thread changes ``held``
        snapshot = list(dict(held).values())
        if not snapshot:
            return Renewal()
        sent = time.monotonic()
        reported = {(h.lease.queue, h.lease.id): p for h in snapshot if (p := h.progress)}
        got = broker.renew([h.lease for h in snapshot], now_ms, reported or None)
        gone = {(x.queue, x.id, x.fence) for x in got.lost}
        until = self.until(sent)
        for h in snapshot:
            if (h.lease.queue, h.lease.id, h.lease.fence) not in gone:
                h.until = max(h.until, until)
            if h.progress is not None and h.progress is reported.get((h.lease.queue, h.lease.id)):
                h.progress = None  # sent; a newer report made meanwhile waits for the next
        return Renewal(still_held(got.lost, held), still_held(got.aborting, held))


def still_held(leases: Sequence[Lease], held: Mapping[tuple[str, str], Held]) -> list[Lease]:
    """The leases of ``leases`` that ``held`` holds, with the same fence."""
    out = []
    for lease in leases:
        h = held.get((lease.queue, lease.id))
        if h is not None and h.lease.fence == lease.fence:
            out.append(lease)
    return out
