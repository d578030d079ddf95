"""Workflows under a SIGKILL storm on a private Redis with real worker processes (the
fault suite's harness, tests/reliability/harness.py): a 500-member chord and a 200-step
chain run while worker processes, supervised and plain, are killed again and again. Every
step completes once as far as the workflow is concerned (released once, final once; a
step's body may run twice under at-least-once), the callback is released once, nothing
hangs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from taskq_core import chain, chord
from tests.reliability.harness import Rig, child_pids

pytestmark = [pytest.mark.slow, pytest.mark.faults]
MEMBER, STEP, COLLECT = "rel.wf_member", "rel.wf_step", "rel.wf_collect"


def test_a_chord_and_a_chain_survive_a_sigkill_storm(tmp_path: Path) -> None:
    rig = Rig(tmp_path, lease=2.0, renew=0.5)
    try:
        for name in (MEMBER, STEP, COLLECT):
            rig.tq.task(name=name)(lambda *a, **k: None)
        member, step, collect = (rig.tq.get_task(n) for n in (MEMBER, STEP, COLLECT))
        big = chord([member.call(f"m{i}", 15) for i in range(500)], collect.call()).enqueue()
        long = chain(step.call(0), *(step.call() for _ in range(199))).enqueue()
        sup = rig.start_worker(4, processes=2)
        rig.start_worker(4)

        def done() -> bool:
            return big.status() != "running" and long.status() != "running"

        def victims() -> list[int]:
            plain = [p.pid for p in rig.live_workers() if p.pid != sup.pid]
            return child_pids(sup.pid) + plain

        kills = rig.storm(
            (0.4, 1.0),
            until=done,
            restart=lambda: rig.start_worker(4) if len(rig.live_workers()) < 2 else None,
            pids=victims,
            max_kills=8,
            timeout=90,
        )
        assert big.result(timeout=90) == 500
        assert long.result(timeout=90) == 200
        assert kills >= 3, "the storm ended before it began"
        stats = queue_stats(rig)
        # kills caught steps in flight: their tasks were delivered again
        assert stats.get("lease_expired", 0) + stats.get("released_counted", 0) > 0, stats
        assert sup.poll() is None, "the supervisor itself died"
        # once as far as the workflows are concerned: every step released once (its task
        # enqueued once) and final once (succeeded), the callback released once
        (queue,) = rig.tq.broker.queue_info(["default"])
        assert queue.stats[f"enqueued|{MEMBER}"] == 500
        assert queue.stats[f"enqueued|{STEP}"] == 200
        assert queue.stats[f"enqueued|{COLLECT}"] == 1
        assert big.info(results=False)["counts"] == {"succeeded": 501}
        assert long.info(results=False)["counts"] == {"succeeded": 200}
        lines = [
            line
            for path in rig.journal.glob("*.log")
            for line in path.read_text().splitlines()
            if line.startswith("callback ")
        ]
        # the callback got every member's result, whichever delivery ran it
        assert lines
        assert all(line.split()[1] == "n=500,sum=500" for line in lines)
    finally:
        rig.close()


def queue_stats(rig: Rig) -> dict[str, int]:
    (queue,) = rig.tq.broker.queue_info(["default"])
    return {k: v for k, v in queue.stats.items() if "|" not in k}


def test_a_chord_survives_a_redis_restart_with_aof(tmp_path: Path) -> None:
    """redis-server SIGKILLed while a 300-member chord and a 100-step chain run, and started
    again from its append-only file (fsync always): both finish, each step released once, the
    callback once with every result."""
    rig = Rig(tmp_path, lease=2.0, renew=0.5, aof=True)
    try:
        for name in (MEMBER, STEP, COLLECT):
            rig.tq.task(name=name)(lambda *a, **k: None)
        member, step, collect = (rig.tq.get_task(n) for n in (MEMBER, STEP, COLLECT))
        big = chord([member.call(f"m{i}", 20) for i in range(300)], collect.call()).enqueue()
        long = chain(step.call(0, 20), *(step.s(20) for _ in range(99))).enqueue()
        rig.start_workers(2, concurrency=4)
        deadline = time.monotonic() + 30
        while len(rig.finished_ids()) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        rig.kill_redis(down=0.5)
        assert big.result(timeout=90) == 300
        assert long.result(timeout=90) == 100
        stats = rig.tq.broker.queue_info(["default"])[0].stats
        assert stats[f"enqueued|{MEMBER}"] == 300
        assert stats[f"enqueued|{STEP}"] == 100
        assert stats[f"enqueued|{COLLECT}"] == 1
        assert big.info(results=False)["counts"] == {"succeeded": 301}
        assert long.info(results=False)["counts"] == {"succeeded": 100}
    finally:
        rig.close()
