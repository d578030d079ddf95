"""The application the fault suite runs in its worker processes (``--app
tests.reliability.journalapp:tq``). Its one task writes ``start <id> <pid> <t>`` and
``finish <id> <pid> <t>`` to an append-only file per process in ``TASKQ_TEST_JOURNAL``, one
``os.write`` per line (unbuffered, O_APPEND), so a line is on disk before the task goes on
and a SIGKILL can cut a run but never garble or lose a line already written.

A second task, ``rel.crash``, writes ``crash <id> <pid> <t>`` and then kills its own process
(SIGKILL, SIGSEGV or ``os._exit(1)``): the harness reads that line as a fault on that pid.

Configured by TASKQ_TEST_* variables (see harness.py): Redis URL, key prefix, lease,
renewal, grace period, socket timeout, the supervisor's longest restart delay, prefetch, and
``TASKQ_TEST_CLOCK_OFFSET`` (seconds this process's clock is ahead of the machine's).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path

from taskq_core import TaskQueue
from taskq_core.clock import SystemClock
from taskq_core.settings import Settings

URL = os.environ["TASKQ_TEST_REDIS_URL"]
PREFIX = os.environ["TASKQ_TEST_PREFIX"]
JOURNAL = Path(os.environ["TASKQ_TEST_JOURNAL"])
TASK, ATASK, CRASH = "rel.journal", "rel.ajournal", "rel.crash"
OFFSET = float(os.environ.get("TASKQ_TEST_CLOCK_OFFSET", "0"))


class OffsetClock(SystemClock):
    """The system clock, ``OFFSET`` seconds ahead (or behind): a host whose clock is off.
    A SystemClock, as a real host's clock is: the broker keeps Redis's time for leases."""

    def time(self) -> float:
        return time.time() + OFFSET


PREFETCH = os.environ.get("TASKQ_TEST_PREFETCH")

tq = TaskQueue(
    clock=OffsetClock() if OFFSET else None,
    settings=Settings(
        broker_url=URL,
        key_prefix=PREFIX,
        broker={"socket_timeout": float(os.environ.get("TASKQ_TEST_SOCKET_TIMEOUT", "10"))},
        worker={
            "lease_seconds": float(os.environ.get("TASKQ_TEST_LEASE", "3")),
            "renew_interval": float(os.environ.get("TASKQ_TEST_RENEW", "1")),
            "grace_period": float(os.environ.get("TASKQ_TEST_GRACE", "10")),
            "max_deliveries": int(os.environ.get("TASKQ_TEST_MAX_DELIVERIES", "5")),
            # unset: the worker's own choice
            **({"prefetch": int(PREFETCH)} if PREFETCH else {}),
        },
        retry={"max_retries": 0},
        supervisor={
            "restart_backoff_max": float(os.environ.get("TASKQ_TEST_RESTART_BACKOFF_MAX", "60"))
        },
    ),
)

_lock = threading.Lock()
_fds: dict[int, int] = {}  # by pid: a forked child opens a file of its own


def _write(kind: str, label: str) -> None:
    pid = os.getpid()
    with _lock:
        fd = _fds.get(pid)
        if fd is None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            fd = _fds[pid] = os.open(JOURNAL / f"{pid}.log", flags, 0o644)
    # one write per line: O_APPEND makes it land whole at the end, whatever other threads do
    os.write(fd, f"{kind} {label} {pid} {time.time():.6f}\n".encode())


@tq.task(name=TASK)
def journal(label: str, ms: float = 10.0, pad: str = "") -> None:
    """Record the start, sleep ``ms`` milliseconds, record the finish (``pad`` only makes the
    message bigger, for the maxmemory scenario)."""
    _write("start", label)
    time.sleep(ms / 1000)
    _write("finish", label)


@tq.task(name=ATASK)
async def ajournal(label: str, ms: float = 10.0) -> None:
    """The same on the event loop."""
    _write("start", label)
    await asyncio.sleep(ms / 1000)
    _write("finish", label)


@tq.task(name=CRASH)
def crash(label: str, how: str = "kill") -> None:
    """Journal ``crash``, then kill this process: ``kill`` (SIGKILL, as the OOM killer does),
    ``segv`` (SIGSEGV, a crash in C) or ``exit`` (``os._exit(1)``)."""
    _write("crash", label)
    if how == "exit":
        os._exit(1)
    os.kill(os.getpid(), signal.SIGSEGV if how == "segv" else signal.SIGKILL)
    time.sleep(10)  # the signal arrives before this returns


# -- workflow steps (tests/workflows/test_workflow_faults.py)


@tq.task(name="rel.wf_member")
def wf_member(label: str, ms: float = 10.0) -> int:
    """A chord member: journalled like ``rel.journal``; its result is 1."""
    _write("start", label)
    time.sleep(ms / 1000)
    _write("finish", label)
    return 1


@tq.task(name="rel.wf_step")
def wf_step(x: int, ms: float = 5.0) -> int:
    """A chain step: the previous result plus one."""
    _write("start", f"step{x}")
    time.sleep(ms / 1000)
    _write("finish", f"step{x}")
    return x + 1


@tq.task(name="rel.wf_collect")
def wf_collect(xs: list[int]) -> int:
    """A chord's callback: journals how many results it got and their sum."""
    _write("start", "callback")
    _write("callback", f"n={len(xs)},sum={sum(xs)}")
    return len(xs)
