"""The application the fault tests run in worker subprocesses (``--app
tests.reliability.workerapp:tq``). Every run of a task is recorded in Redis under the test's
prefix, so the test can tell which process ran what, and how often."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import redis

from taskq_core import Settings, TaskQueue

URL = os.environ["TASKQ_TEST_REDIS_URL"]
PREFIX = os.environ["TASKQ_TEST_PREFIX"]
#: where the tasks record their runs: Redis itself when the worker talks to it through a
#: fault proxy (the record must not depend on the link under test)
RECORD_URL = os.environ.get("TASKQ_TEST_RECORD_URL", URL)
SOCKET_TIMEOUT = os.environ.get("TASKQ_TEST_SOCKET_TIMEOUT")

tq = TaskQueue(
    settings=Settings(
        broker_url=URL,
        key_prefix=PREFIX,
        worker={
            "lease_seconds": float(os.environ.get("TASKQ_TEST_LEASE", "3")),
            "renew_interval": float(os.environ.get("TASKQ_TEST_RENEW", "1")),
            "grace_period": float(os.environ.get("TASKQ_TEST_GRACE", "10")),
            "max_deliveries": int(os.environ.get("TASKQ_TEST_MAX_DELIVERIES", "5")),
        },
        retry={"max_retries": 0},
        **({"broker": {"socket_timeout": float(SOCKET_TIMEOUT)}} if SOCKET_TIMEOUT else {}),
    )
)
r = redis.Redis.from_url(RECORD_URL)
PID = str(os.getpid())


def _first_run(i: int) -> bool:
    return bool(r.set(f"{PREFIX}:test:first:{i}", PID, nx=True))


@tq.task(name="rel.long_then_short")
def long_then_short(i: int, long: float = 60.0, short: float = 0.05) -> str:
    """Slow on its first run (the one the test interrupts), quick when run again."""
    r.rpush(f"{PREFIX}:test:started", f"{i}:{PID}")
    time.sleep(long if _first_run(i) else short)
    r.rpush(f"{PREFIX}:test:finished", f"{i}:{PID}")
    return PID


@tq.task(name="rel.along_then_short")
async def along_then_short(i: int, long: float = 60.0, short: float = 0.05) -> str:
    r.rpush(f"{PREFIX}:test:started", f"{i}:{PID}")
    await asyncio.sleep(long if _first_run(i) else short)
    r.rpush(f"{PREFIX}:test:finished", f"{i}:{PID}")
    return PID


@tq.task(name="rel.kill_my_worker")
def kill_my_worker() -> None:
    """A poison task: every delivery kills the process running it."""
    r.rpush(f"{PREFIX}:test:started", f"poison:{PID}")
    os.kill(os.getpid(), signal.SIGKILL)


@tq.task(name="rel.quick")
def quick(i: int) -> str:
    """An ordinary task: records that it ran."""
    r.rpush(f"{PREFIX}:test:finished", f"{i}:{PID}")
    return PID


@tq.task(name="rel.crash")
def crash(how: str) -> None:
    """A task that kills its own process on every delivery: by SIGKILL (an OOM kill), by
    SIGSEGV (a crash in C) or by ``os._exit(1)``."""
    r.rpush(f"{PREFIX}:test:started", f"crasher:{PID}")
    if how == "exit":
        os._exit(1)
    os.kill(os.getpid(), signal.SIGSEGV if how == "segv" else signal.SIGKILL)
    time.sleep(10)  # the signal is delivered before this returns
