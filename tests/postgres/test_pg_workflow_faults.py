"""Workflows on PostgreSQL under the supervisor while its worker processes are SIGKILLed again
and again (as tests/workflows/test_workflow_faults.py on Redis): a 200-member chord and a
60-step chain finish; every step is released once and final once (a step's body may run
twice under at-least-once), and the callback gets every member's result."""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from taskq_core import chain, chord
from tests.postgres.test_pg_supervisor import PgHarness, harness, stats  # noqa: F401
from tests.supervisor.conftest import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_a_chord_and_a_chain_survive_sigkills_of_supervised_processes(
    harness: PgHarness,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mod = harness.load(
        monkeypatch,
        {
            "worker": {
                "lease_seconds": 2.0,
                "renew_interval": 0.5,
                "grace_period": 1.0,
                "concurrency": 4,
            },
            "supervisor": {"restart_backoff": 0.2, "interval": 0.5},
        },
    )
    big = chord([mod.member.call(i, 0.02) for i in range(200)], mod.collect.call()).enqueue()
    long = chain(mod.step.call(0), *(mod.step.call() for _ in range(59))).enqueue()
    sup = harness.start(processes=2)
    wait_until(lambda: len(harness.events("ready")) >= 2, 45, "two ready processes")
    rng = random.Random(7)
    kills = 0
    deadline = time.monotonic() + 90
    while kills < 6 and time.monotonic() < deadline:
        if big.status() != "running" and long.status() != "running":
            break
        time.sleep(rng.uniform(0.4, 1.0))
        ready = [c["pid"] for c in sup.children() if c["ready"]]
        if ready:
            os.kill(rng.choice(ready), signal.SIGKILL)
            kills += 1
    assert big.result(timeout=90) == 200
    assert long.result(timeout=90) == 60
    assert kills >= 3, "the storm ended before it began"
    s = stats(mod.tq)
    # kills caught steps in flight: their tasks were handed back, or their leases lapsed
    assert s.get("lease_expired", 0) + s.get("released_counted", 0) > 0, s
    # released once each (its task enqueued once), final once, the callback released once
    assert s["enqueued|pgsup.member"] == 200
    assert s["enqueued|pgsup.step"] == 60
    assert s["enqueued|pgsup.collect"] == 1
    assert big.info(results=False)["counts"] == {"succeeded": 201}
    assert long.info(results=False)["counts"] == {"succeeded": 60}
    # the callback got every member's result, whichever delivery ran it
    calls = [k for k in harness.runs.finished() if k.startswith("collect:")]
    assert calls == ["collect:n=200,sum=200"]
    assert len(harness.events("crash")) == kills
