"""The leases a worker holds, on both brokers: a delivery leased ahead whose lease lapsed
before it could start does not start (taskq_core/leases.py), and the renewal thread counts
as lost only leases the worker still holds after the call."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from taskq_core import TaskQueue
from taskq_core.brokers.base import Lease, Renewal


def lost_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lost the lease" in r.getMessage()]


def test_a_renewal_racing_settled_tasks_reports_no_lost_lease(
    make_app: Callable[..., TaskQueue],
    broker_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every renewal is slowed by 0.3 s before it reaches the broker, so tasks of its
    snapshot finish and are settled meanwhile (the broker refuses their renewal): none of
    them is a lost lease, and nothing says so."""
    tq = make_app(broker_kind, worker={"lease_seconds": 6, "renew_interval": 0.1})
    real = tq.broker.renew
    raced = 0

    def slow_renew(leases: Sequence[Lease], now_ms: int, progress: Any = None) -> Renewal:
        nonlocal raced
        time.sleep(0.3)
        for lease in leases:
            state = tq.broker.get(lease.queue, lease.id)
            raced += state is None or state.state is None
        return real(leases, now_ms, progress)

    monkeypatch.setattr(tq.broker, "renew", slow_renew)

    @tq.task(name="l.short")
    async def short(i: int) -> None:
        await asyncio.sleep(0.03)

    for i in range(60):
        short.enqueue(i)
    caplog.set_level(logging.WARNING, logger="taskq")
    w = tq.worker(burst=True, handle_signals=False, concurrency=4)
    w.run()
    assert w.counts.succeeded == 60
    assert raced > 0, "no renewal raced a settled task: the test shows nothing"
    assert w.counts.lost_leases == 0
    assert lost_lines(caplog) == []


def test_a_lease_lost_while_its_task_runs_is_still_counted(
    make_app: Callable[..., TaskQueue],
    broker_kind: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The other side of the rule above: a lease taken away while the worker holds it (here
    handed back behind the worker's back) is counted and logged as lost."""
    tq = make_app(broker_kind, worker={"lease_seconds": 6, "renew_interval": 0.1})
    taken = False

    @tq.task(name="l.robbed")
    async def robbed() -> None:
        nonlocal taken
        if not taken:
            taken = True
            tq.broker.release([r.lease for r in w._held.values()])
            await asyncio.sleep(0.5)  # renewals run while it is still held

    robbed.enqueue()
    caplog.set_level(logging.WARNING, logger="taskq")
    w = tq.worker(burst=True, handle_signals=False, concurrency=1)
    w.run()
    assert w.counts.lost_leases >= 1
    assert any("lost the lease of 1 task(s)" in m for m in lost_lines(caplog))


def test_leased_ahead_deliveries_whose_lease_lapsed_do_not_start(
    make_app: Callable[..., TaskQueue],
    broker_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker leases four tasks (one slot, three ahead), then its loop is blocked for
    1.6 s (a starved or frozen process) while their renewals do not reach the broker: the
    three leases lapse (1 s). They are dropped, not started (one log line for the batch);
    the broker delivers them again (as suspects) and each runs exactly once."""
    tq = make_app(broker_kind, worker={"lease_seconds": 1.0, "renew_interval": 0.2, "prefetch": 3})
    runs: list[int] = []

    @tq.task(name="l.ahead")
    async def ahead(i: int) -> None:
        runs.append(i)
        if i == 0:
            time.sleep(1.6)  # blocks the loop, as a freeze would

    ids = [ahead.enqueue(i).id for i in range(4)]
    real = tq.broker.renew

    def renew_first_only(leases: Sequence[Lease], now_ms: int, progress: Any = None) -> Renewal:
        # only the running task's renewal reaches the broker; the others are lost on the way
        mine = [x for x in leases if x.id == ids[0]]
        got = real(mine, now_ms, progress) if mine else Renewal()
        return Renewal(got.lost + [x for x in leases if x.id != ids[0]], got.aborting)

    monkeypatch.setattr(tq.broker, "renew", renew_first_only)
    caplog.set_level(logging.WARNING, logger="taskq")
    w = tq.worker(burst=True, handle_signals=False, concurrency=1)
    w.run()
    assert sorted(runs) == [0, 1, 2, 3], f"ran {runs}"
    dropped = [m for m in lost_lines(caplog) if "leased ahead" in m]
    assert len(dropped) == 1, dropped
    assert "of 3 task(s)" in dropped[0]
    assert w.counts.succeeded == 4
