"""Helpers of the scheduler tests: an app on the test's own prefix with a ManualClock, and
the messages the scheduler left in Redis."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
import redis

from taskq_core import TaskQueue
from taskq_core.clock import ManualClock
from taskq_core.message import stored_dict

# ``taskq`` as a subprocess on the test's prefix: the CLI tests' own fixture
from ..cli.conftest import cli  # noqa: F401

#: a whole hour (and so a whole minute) since the epoch: 2027-01-15T08:00:00Z
HOUR = 1_800_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(HOUR + 1)


@pytest.fixture
def sched_app(make_app: Callable[..., TaskQueue], clock: ManualClock) -> TaskQueue:
    """A Redis-backed app driven by ``clock``, with two tasks."""
    tq = make_app("redis")
    tq.clock = clock
    tq.task(name="report")(lambda: "done")
    tq.task(name="add", queue="low")(lambda a, b: a + b)
    return tq


def keys_per_message(client: redis.Redis, prefix: str, queue: str = "default") -> Counter[str]:
    """How many task messages each idempotency key has in ``queue``."""
    raw = client.hvals(f"{prefix}:{{{queue}}}:msg")
    return Counter(str(stored_dict(m).get("idempotency_key")) for m in raw)
