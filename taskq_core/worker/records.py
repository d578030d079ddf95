"""What the worker keeps: ``WorkerCounts`` (per process) and ``Running`` (per held task).

A ``Running`` is made when a delivery is leased (``fetching.lease_taken``), filled in as the
task starts and runs (``running.py``, ``sync_tasks.py``), and dropped when its outcome goes
to the outbox (``outbox.finish``) or its lease is handed back (``settling.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..brokers.base import Lease
from ..message import Message


@dataclass(slots=True)
class Running:
    """One leased task: running, or leased ahead and waiting for a slot."""

    lease: Lease
    #: the run: its asyncio.Task, or for a sync task settled from its thread, a future
    task: asyncio.Future[None] | None = None
    name: str = ""
    started: float = 0.0  # monotonic; 0 while leased ahead, not started yet
    started_ms: int = 0  # wall clock, for wait times
    message: Message | None = None
    #: a sync task's call in its thread, monotonic (0: not begun, not ended; async tasks
    #: leave them 0): written by the thread, read by the loop once the call is over
    began: float = 0.0
    ended: float = 0.0
    began_ms: int = 0  # the app's wall clock when its thread began it
    queued: float = 0.0  # seconds a sync task waited for a thread
    #: monotonic: the lease holds at least until then (leases.py); a buffered delivery
    #: past it does not start
    until: float = 0.0
    #: progress reported by the task (``current_task().progress``) not yet sent: the
    #: next lease renewal carries it
    progress: bytes | None = None
    #: someone asked to abort the task (learned at a renewal; monotonic time), 0: not
    aborted_at: float = 0.0


@dataclass(slots=True)
class WorkerCounts:
    """What this worker process has done (heartbeats and tests read it)."""

    started: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead: int = 0
    expired: int = 0  # not started before their expiry, not run (flow control)
    aborted: int = 0  # stopped on request (handle.abort())
    stale: int = 0
    lost_leases: int = 0
    released: int = 0
    timed_out: int = 0
    fetch_stalls: int = 0  # fetch round trips abandoned by the watchdog
