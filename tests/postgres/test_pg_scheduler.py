"""The scheduler's once-per-tick rule on the PostgreSQL broker: two schedulers ticking
together make one task per tick (the idempotency key of the tick, held in the database)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskq_core import TaskQueue
from taskq_core.clock import ManualClock
from taskq_core.scheduler import Scheduler

pytestmark = pytest.mark.postgres

HOUR = 1_800_000_000.0


def test_two_schedulers_ticking_together_make_one_task_per_tick(
    make_app: Callable[..., TaskQueue],
) -> None:
    clock = ManualClock(HOUR + 1)
    apps = []
    for _ in range(2):
        app = make_app("postgres")
        app.clock = clock
        app.task(name="report")(lambda: "done")
        app.schedule("report", every=60)
        apps.append(app)
    a, b = Scheduler(apps[0]), Scheduler(apps[1])
    a.tick(clock.time())
    b.tick(clock.time())
    clock.now = HOUR + 120
    fa, fb = a.tick(clock.time()), b.tick(clock.time())
    assert [f.created for f in fa] == [True, True]
    assert [f.created for f in fb] == [False, False]
    assert [f.task_id for f in fa] == [f.task_id for f in fb]
    (info,) = apps[0].broker.queue_info(["default"])
    assert info.ready + info.delayed == 2
    assert info.stats["enqueued"] == 2
