"""What a worker does about suspects: tasks whose last delivery ended without an outcome
(their lease lapsed, their process crashed, or an internal error happened around them).

The broker leases a suspect only alone, to a worker that holds nothing else (``fetch.lua``,
``alone``), and tells every fetch how many suspects wait. A worker told that some wait
stops leasing new work, lets what it holds finish, then fetches with ``alone``: it gets a
suspect, or a normal batch if another worker took them meanwhile. While it runs a suspect it
leases nothing else. A task that kills its process therefore takes no innocent task with it
after its first crash (docs/delivery.md, "Poison tasks and suspects").
"""

from __future__ import annotations

from collections.abc import Container

from .brokers.base import Delivery, FetchResult
from .redact import redact_text


class SuspectGate:
    """One worker's view of the suspects: how many wait, and the one it runs."""

    __slots__ = ("running", "waiting")

    def __init__(self) -> None:
        self.waiting = 0
        self.running: tuple[str, str] | None = None

    def note(self, result: FetchResult) -> Delivery | None:
        """Take in a fetch's reply; returns the suspect it leased, if it did."""
        self.waiting = result.suspects
        if result.suspect and result.deliveries:
            d = result.deliveries[0]
            self.running = (d.queue, d.id)
            return d
        return None

    def holding_back(self, held: Container[tuple[str, str]], holds_any: bool) -> bool:
        """True while the worker must lease nothing new: it runs a suspect, or suspects
        wait and it still holds tasks (it fetches ``alone`` once it holds none)."""
        if self.running is not None:
            if self.running in held:
                return True
            self.running = None
        return self.waiting > 0 and holds_any


def internal_error_reason(exc: BaseException) -> str:
    """The reason a hand-back after an internal error gives (secrets redacted)."""
    return redact_text(f"an internal error around the task: {type(exc).__name__}: {exc}")
