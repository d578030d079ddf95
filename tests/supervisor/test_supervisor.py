"""The supervisor with real worker processes and a real Redis: autoscaling from min to
max and back, scale-down that waits for running tasks, hard timeouts (a task stuck in C
and one in a Python loop), recycling at a task count and at a memory ceiling, crash
restarts with backoff. Tasks record every run in Redis, so "no task lost or run twice" is
checked run by run.

Bounds stated here (on a loaded 2-core machine, with the fast settings of each test):
from min (1) to max (3) processes within 15 s of a burst; back to min within 30 s of the
queue draining; tasks of a killed process finish elsewhere within 10 s, while their
lease (30 s) would have kept them waiting three times as long.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import psutil
import pytest

from taskq_core.observability.heartbeat import read_workers
from taskq_core.supervisor import Decision, Inputs, Supervisor, read_autoscaler

from .conftest import BURST_SUPERVISOR, Harness, wait_until

pytestmark = pytest.mark.slow

FAST_WORKER = {"lease_seconds": 30.0, "renew_interval": 0.5, "grace_period": 5.0}


def stats(h: Harness, queue: str = "default") -> dict[str, int]:
    raw = h.client.hgetall(f"{h.prefix}:{{{queue}}}:stats")
    return {k.decode() if isinstance(k, bytes) else k: int(v) for k, v in raw.items()}


def exactly_once(h: Harness, keys: list[str]) -> dict[str, int]:
    """Every key finished exactly once and started exactly once; returns key -> pid."""
    started, finished = h.runs.started(), h.runs.finished()
    assert sorted(finished) == sorted(keys), "a task was lost"
    for k in keys:
        assert len(started[k]) == 1, f"task {k} ran {len(started[k])} times"
        assert len(finished[k]) == 1
        assert started[k][0][0] == finished[k][0][0]
    return {k: finished[k][0][0] for k in keys}


def check_retired_gracefully(h: Harness) -> int:
    """Every retired process exited 0 with nothing to hand back, after finishing every
    task it had started. Returns how many were retired."""
    exits = {e["n"]: e for e in h.events("exit")}
    started, finished = h.runs.started(), h.runs.finished()
    retired = h.events("retire")
    for e in retired:
        ex = exits.get(e["n"])
        assert ex is not None, f"retired process {e['pid']} never exited"
        assert ex["code"] == 0, ex
        assert ex["released"] == 0, ex
        pid = e["pid"]
        mine = [k for k, runs in started.items() if any(p == pid for p, _ in runs)]
        for k in mine:
            assert any(p == pid for p, _ in finished.get(k, [])), (
                f"process {pid} was retired before task {k} finished"
            )
    return len(retired)


def test_autoscaler_grows_to_max_on_a_burst_and_shrinks_back_to_min(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 2},
            "retry": {"max_retries": 0},
            "supervisor": BURST_SUPERVISOR,
        },
    )
    sup = harness.start(min_processes=1, max_processes=3)
    wait_until(lambda: harness.events("ready"), 30, "the first process")
    assert sup.processes == 1

    keys = [f"w{i}" for i in range(60)]
    burst_at = time.monotonic()
    mod.tq.enqueue_many([mod.work.call(k, 0.5) for k in keys])
    peak = wait_until(
        lambda: len([c for c in sup.children() if c["ready"] and c["active"]]) == 3,
        15,
        "three ready processes",
    )
    grew_in = time.monotonic() - burst_at
    assert peak
    assert [e["why"] for e in harness.events("spawn")] == ["start", "scale up", "scale up"]
    # the new processes took tasks
    wait_until(
        lambda: len({p for r in harness.runs.started().values() for p, _ in r}) == 3,
        15,
        "tasks on all three processes",
    )

    wait_until(lambda: len(harness.runs.finished()) == len(keys), 60, "the burst to drain")
    drained_at = time.monotonic()
    wait_until(lambda: sup.processes == 1 and len(sup.children()) == 1, 30, "back to one process")
    shrank_in = time.monotonic() - drained_at
    exactly_once(harness, keys)
    assert check_retired_gracefully(harness) == 2
    s = stats(harness)
    assert s.get("ok") == len(keys)
    assert s.get("released", 0) == 0
    assert s.get("lease_expired", 0) == 0
    # never above the maximum
    assert max(e["processes"] for e in harness.events("decision")) <= 3
    # the decision, its inputs and reason are published for the façade and HPA/KEDA
    records = read_autoscaler(mod.tq)
    mine = [r for r in records if r["supervisor"] == sup.id]
    assert mine
    assert (mine[0]["min"], mine[0]["max"]) == (1, 3)
    assert {"pressure", "utilisation", "votes", "error_rate"} <= set(mine[0]["inputs"])
    print(f"grew 1->3 in {grew_in:.1f}s, shrank back in {shrank_in:.1f}s")


class Scripted:
    """A stand-in for the autoscaler: the test says how many processes it wants."""

    def __init__(self, want: int) -> None:
        self.want = want

    def decide(self, inputs: Inputs, now: float) -> Decision:
        p = inputs.processes
        action = "up" if self.want > p else "down" if self.want < p else "hold"
        return Decision(action, self.want, f"scripted: {self.want}", min=1, max=2)  # type: ignore[arg-type]


def test_scale_down_waits_for_the_running_task(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 1},
            "supervisor": {"interval": 0.2},
        },
    )
    sup = harness.start(min_processes=1, max_processes=2)
    script = Scripted(2)
    sup.scaler = script  # type: ignore[assignment]
    wait_until(lambda: len(harness.events("ready")) == 2, 30, "two processes")
    mod.tq.enqueue_many([mod.work.call(k, 2.5) for k in ("a", "b")])
    started = wait_until(
        lambda: (s := harness.runs.started()) and len(s) == 2 and s, 15, "both tasks running"
    )
    assert len({runs[0][0] for runs in started.values()}) == 2  # one on each process
    script.want = 1
    retire = wait_until(lambda: harness.events("retire"), 10, "a scale-down")[0]
    assert retire["reason"] == "scale down"
    assert retire["running"] == 1  # it was busy: it must finish before it exits
    ex = wait_until(
        lambda: [e for e in harness.events("exit") if e["n"] == retire["n"]], 15, "its exit"
    )[0]
    by_pid = exactly_once(harness, ["a", "b"])
    task = next(k for k, pid in by_pid.items() if pid == retire["pid"])
    finished_at = harness.runs.finished()[task][0][1]
    assert ex["wall"] >= finished_at  # it exited after its task ended, not before
    assert (ex["code"], ex["released"]) == (0, 0)
    assert stats(harness).get("released", 0) == 0
    assert sup.processes == 1


def _hard_timeout_round(
    harness: Harness, kill_no: int, sibling_keys: tuple[str, str]
) -> dict[str, Any]:
    kill: dict[str, Any] = wait_until(
        lambda: len(harness.events("hard_timeout")) >= kill_no and harness.events("hard_timeout"),
        30,
        f"hard timeout #{kill_no}",
    )[kill_no - 1]
    finished = wait_until(
        lambda: (f := harness.runs.finished()) and all(k in f for k in sibling_keys) and f,
        20,
        "the sibling tasks to finish elsewhere",
    )
    for k in sibling_keys:
        runs = harness.runs.started()[k]
        assert len(runs) == 2  # interrupted with its process, then run again
        assert runs[0][0] == kill["pid"]
        assert finished[k][0][0] != kill["pid"]  # finished in the fresh process
        # handed back at once: done well before the 30 s lease would have lapsed
        assert finished[k][0][1] - kill["wall"] < 10.0
    return kill


def test_hard_timeout_kills_a_stuck_task_and_hands_its_siblings_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = harness.load(
        monkeypatch,
        {"worker": {**FAST_WORKER, "concurrency": 4}, "supervisor": {"interval": 0.5}},
        TASKQ_TEST_HARD="1.5",
    )
    # a task stuck in C (time.sleep) with two siblings, all fetched by the one process
    c_task, *_ = mod.tq.enqueue_many(
        [
            mod.stuck_in_c.call("c"),
            mod.long_then_short.call("a"),
            mod.long_then_short.call("b"),
        ]
    )
    harness.start(processes=1)
    kill = _hard_timeout_round(harness, 1, ("a", "b"))
    assert kill["task"] == "sup.stuck_in_c"
    assert kill["outcome"] == "retried"  # max_retries=1: timed out, then retried
    info = wait_until(
        lambda: (i := c_task.info())["status"] == "succeeded" and i, 20, "the retry to succeed"
    )
    assert info["attempts"] == 2
    assert info["result"] == "recovered"
    # then one stuck in a Python loop, with no retries left: failed as timed out
    p_task, *_ = mod.tq.enqueue_many(
        [
            mod.stuck_in_python.call("p"),
            mod.long_then_short.call("d"),
            mod.long_then_short.call("e"),
        ]
    )
    kill = _hard_timeout_round(harness, 2, ("d", "e"))
    assert kill["task"] == "sup.stuck_in_python"
    assert kill["outcome"] == "failed"
    info = p_task.info()
    assert info["status"] == "failed"
    assert info["error"]["type"] == "taskq_core.errors.HardTimeout"
    assert "hard time limit of 1.5s" in info["error"]["message"]
    # a fresh process replaced each killed one at once; no crash, no backoff
    assert [e["why"] for e in harness.events("spawn")] == ["start", "hard timeout", "hard timeout"]
    assert harness.events("crash") == []
    s = stats(harness)
    assert s.get("timed_out|sup.stuck_in_c") == 1
    assert s.get("timed_out|sup.stuck_in_python") == 1
    assert s.get("released") == 4  # the four siblings, handed back by the supervisor
    assert s.get("lease_expired", 0) == 0


def test_recycled_at_its_task_count(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 1},
            "supervisor": {"max_tasks_per_process": 4, "interval": 0.5},
        },
    )
    # 16 tasks of 0.4 s: after its 4th, a process still has seconds of work left while its
    # replacement starts
    keys = [f"t{i}" for i in range(16)]
    mod.tq.enqueue_many([mod.work.call(k, 0.4) for k in keys])
    harness.start(processes=1)
    wait_until(lambda: len(harness.runs.finished()) == len(keys), 60, "every task")
    by_pid = exactly_once(harness, keys)
    recycles = harness.events("recycle")
    assert recycles
    assert all("max_tasks_per_process=4" in e["reason"] for e in recycles)
    first = recycles[0]["pid"]
    ran = sum(1 for pid in by_pid.values() if pid == first)
    # it reached 4, and ran at most a few more while its replacement started
    assert 4 <= ran < len(keys)
    assert len(set(by_pid.values())) >= 2
    wait_until(lambda: len(harness.events("retire")) == len(recycles), 15, "the retirements")
    wait_until(lambda: len(harness.events("exit")) >= len(recycles), 15, "their exits")
    check_retired_gracefully(harness)
    assert stats(harness).get("released", 0) == 0


def test_recycled_at_a_memory_ceiling(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 1},
            "supervisor": {"max_memory_mb": 300, "interval": 0.5},
        },
    )
    sup = harness.start(processes=1)
    wait_until(lambda: harness.events("ready"), 30, "the process")
    keys = ["leak", *(f"t{i}" for i in range(6))]
    mod.tq.enqueue_many([mod.hog.call("leak", 400), *(mod.work.call(k, 0.2) for k in keys[1:])])
    recycle = wait_until(lambda: harness.events("recycle"), 30, "a recycle")[0]
    assert "RSS" in recycle["reason"]
    assert "max_memory_mb=300" in recycle["reason"]
    wait_until(lambda: len(harness.runs.finished()) == len(keys), 60, "every task")
    by_pid = exactly_once(harness, keys)
    assert by_pid["leak"] == recycle["pid"]
    wait_until(lambda: harness.events("exit"), 15, "the old process to exit")
    check_retired_gracefully(harness)
    assert len(sup.children()) == 1
    assert sup.children()[0]["pid"] != recycle["pid"]


def test_a_killed_process_is_restarted_and_its_tasks_handed_back_at_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 2},
            "supervisor": {"restart_backoff": 0.2, "interval": 0.5},
        },
    )
    mod.tq.enqueue_many([mod.long_then_short.call(k) for k in ("a", "b")])
    harness.start(processes=1)
    started = wait_until(
        lambda: (s := harness.runs.started()) and len(s) == 2 and s, 30, "both tasks running"
    )
    pid = started["a"][0][0]
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    finished = wait_until(
        lambda: (f := harness.runs.finished()) and len(f) == 2 and f, 20, "both tasks"
    )
    for k in ("a", "b"):
        assert finished[k][0][0] != pid
        assert finished[k][0][1] - killed_at < 10.0  # not the 30 s lease
    crash = harness.events("crash")
    assert len(crash) == 1
    assert crash[0]["restart_in"] == pytest.approx(0.2)
    assert [e["why"] for e in harness.events("spawn")] == ["start", "restart"]


def test_tasks_leased_ahead_by_a_process_that_dies_are_handed_back_at_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One slot and three tasks leased ahead behind a task that kills its process: the
    three had not started, so nothing but the supervisor knows of them in time (the child
    reports a fetch's leases before any starts); they run in the new process within
    seconds, not after their 30 s lease, and the killer's delivery alone is counted."""
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 1, "prefetch": 3},
            "supervisor": {"interval": 0.5},
        },
    )
    mod.tq.enqueue_many(
        [mod.die_after.call("killer", 1.0), *(mod.work.call(f"w{i}", 0.01) for i in range(3))]
    )
    harness.start(processes=1)
    started = wait_until(lambda: harness.runs.started().get("killer"), 30, "the killer")
    pid = started[0][0]
    wait_until(lambda: harness.events("crash"), 15, "the process to die")
    died_at = time.time()
    keys = ["killer", *(f"w{i}" for i in range(3))]
    finished = wait_until(
        lambda: (f := harness.runs.finished()) and all(k in f for k in keys) and f,
        20,
        "the three tasks leased ahead",
    )
    for k in keys[1:]:
        assert finished[k][0][0] != pid  # never started by the process that died
        assert finished[k][0][1] - died_at < 10.0  # handed back, not left to their lease
        assert len(finished[k]) == 1
    assert len(harness.events("crash")) == 1


def test_a_crash_loop_backs_off(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    harness.load(
        monkeypatch,
        # a process living longer than the cap (2 s) would reset the streak: these die at
        # import, far sooner
        {"supervisor": {"restart_backoff": 0.05, "restart_backoff_max": 2.0, "interval": 0.5}},
        TASKQ_TEST_CRASH_CHILD="1",
    )
    harness.start(processes=1)
    crashes = wait_until(lambda: len(c := harness.events("crash")) >= 7 and c, 40, "7 crashes")
    # the delay doubles per crash in a row, up to the cap: no restart storm
    delays = [e["restart_in"] for e in crashes[:7]]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert all(e["code"] not in (0, None) for e in crashes)


def test_supervisors_on_several_hosts_share_the_cluster_maximum(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two supervisors (as on two hosts), each allowed 3 processes, the cluster 4: each
    takes its share of 2 from the published records, so together they never pass 4."""
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 1},
            "retry": {"max_retries": 0},
            "supervisor": {
                "interval": 0.25,
                "readings_up": 1,
                "cooldown_up": 0.3,
                "readings_down": 2,
                "cooldown_down": 0.5,
                "backlog_seconds_up": 1.0,
                "cluster_max_processes": 4,
            },
        },
    )
    first = harness.start(min_processes=1, max_processes=3)
    second = Supervisor(
        mod.tq,
        app_spec=harness.app_spec,
        handle_signals=False,
        log_level="WARNING",
        min_processes=1,
        max_processes=3,
    )
    thread = threading.Thread(target=second.run, daemon=True)
    thread.start()
    try:
        wait_until(
            lambda: {first.id, second.id} <= {r["supervisor"] for r in read_autoscaler(mod.tq)},
            30,
            "both supervisors to publish",
        )
        keys = [f"m{i}" for i in range(40)]
        mod.tq.enqueue_many([mod.work.call(k, 0.3) for k in keys])
        peak = 0
        deadline = time.monotonic() + 60
        while len(harness.runs.finished()) < len(keys):
            total = first.processes + second.processes
            peak = max(peak, total)
            assert total <= 4, f"{first.processes} + {second.processes} processes"
            assert time.monotonic() < deadline, "the burst did not drain"
            time.sleep(0.05)
        assert peak == 4
        exactly_once(harness, keys)
        shares = {r["supervisor"]: r["max"] for r in read_autoscaler(mod.tq)}
        assert shares == {first.id: 2, second.id: 2}
    finally:
        second.stop(now=True)
        thread.join(60)
    assert not thread.is_alive()


def _cli_supervisor(harness: Harness) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "taskq_core.cli",
            "worker",
            "--app",
            harness.app_spec,
            "--processes",
            "2",
            "--log-level",
            "WARNING",
        ],
        cwd=harness.tmp_path,
    )


def test_taskq_worker_processes_runs_the_supervisor(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``taskq worker --processes 2`` (contract 3): two worker processes whose heartbeats
    name the supervisor; SIGTERM stops everything with exit code 0."""
    mod = harness.load(monkeypatch, {"worker": FAST_WORKER, "supervisor": {"interval": 0.3}})
    proc = _cli_supervisor(harness)
    try:
        workers = wait_until(
            lambda: len(w := read_workers(mod.tq)) == 2 and w, 30, "two worker heartbeats"
        )
        sups = {w["supervisor"] for w in workers}
        assert len(sups) == 1
        assert None not in sups
        assert all(w["pid"] != proc.pid for w in workers)
        record = wait_until(lambda: read_autoscaler(mod.tq), 15, "the published record")[0]
        assert record["supervisor"] in sups
        assert (record["processes"], record["min"], record["max"]) == (2, 2, 2)
        handle = mod.work.enqueue("cli", 0.05)
        assert handle.result(timeout=20) in {str(w["pid"]) for w in workers}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert read_autoscaler(mod.tq) == []
        assert read_workers(mod.tq) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_worker_processes_stop_when_the_supervisor_is_killed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = harness.load(monkeypatch, {"worker": FAST_WORKER, "supervisor": {"interval": 0.3}})
    proc = _cli_supervisor(harness)
    try:
        workers = wait_until(
            lambda: len(w := read_workers(mod.tq)) == 2 and w, 30, "two worker heartbeats"
        )
        proc.kill()  # SIGKILL: no chance to stop its children
        proc.wait(10)
        pids = [int(w["pid"]) for w in workers]
        # their pipes closed: each stops as on SIGTERM, and removes its heartbeat
        wait_until(lambda: not any(_alive(p) for p in pids), 20, "the orphans to exit")
        assert read_workers(mod.tq) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
