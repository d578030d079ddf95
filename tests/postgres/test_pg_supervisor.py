"""The supervisor (``taskq worker --processes N|auto``) on the PostgreSQL broker, with real
worker processes: the CLI's two processes and their records, a SIGKILLed process restarted
with its tasks handed back, a task that crashes its own process dead-lettered at the
delivery cap while the rest carries on, and the autoscaler growing on a burst and shrinking
back, on the signals it reads from PostgreSQL.

The worker app is written into the test's tmp_path (as in tests/supervisor/): its broker is
PostgreSQL, and its tasks record every run in Redis under the test's prefix (which the
faults here do not touch), so "no task lost or run twice" is checked run by run.

Bounds (on a loaded 2-core machine): tasks of a killed process finish elsewhere within 15 s
of the kill, while their lease (30 s) would have kept them waiting twice as long; 200 tasks
and a crasher settled within 60 s; from 1 to 3 processes within 20 s of a burst, back to 1
within 30 s of the queue draining. Each test takes 4-10 s here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import redis

from taskq_core import TaskQueue
from taskq_core.cli.common import load_app
from taskq_core.observability.heartbeat import read_workers
from taskq_core.supervisor import read_autoscaler
from tests.conftest import drop_namespace
from tests.supervisor.conftest import BURST_SUPERVISOR, Harness, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

#: a 30 s lease: a task handed back within seconds was handed back, not left to lapse
FAST_WORKER = {"lease_seconds": 30.0, "renew_interval": 0.5, "grace_period": 5.0}
MAX_DELIVERIES = 5

APP_SOURCE = '''
"""The worker app of a PostgreSQL supervisor test: its broker is PostgreSQL
(TASKQ_TEST_BROKER_URL); every run of a task is recorded in Redis (TASKQ_TEST_RECORD_URL)
under the test's prefix, with the pid and the time."""

import json
import os
import signal
import time

import redis

from taskq_core import TaskQueue

PREFIX = os.environ["TASKQ_TEST_PREFIX"]
OPTIONS = json.loads(os.environ["TASKQ_TEST_OPTIONS"])

tq = TaskQueue(os.environ["TASKQ_TEST_BROKER_URL"], key_prefix=PREFIX, **OPTIONS)
r = redis.Redis.from_url(os.environ["TASKQ_TEST_RECORD_URL"])
PID = str(os.getpid())


def note(kind, key):
    r.rpush(f"{PREFIX}:test:{kind}", f"{key}:{PID}:{time.time():.3f}")


def first_run(key):
    return bool(r.set(f"{PREFIX}:test:first:{key}", PID, nx=True))


@tq.task(name="pgsup.work")
def work(key, seconds=0.2):
    note("started", key)
    time.sleep(seconds)
    note("finished", key)
    return PID


@tq.task(name="pgsup.long_then_short")
def long_then_short(key, long=60.0, short=0.05):
    """Slow on its first run (the one the test interrupts), quick when run again."""
    first = first_run(key)
    note("started", key)
    time.sleep(long if first else short)
    note("finished", key)
    return PID


@tq.task(name="pgsup.member")
def member(i, seconds=0.02):
    """A chord's member (tests/postgres/test_pg_workflow_faults.py)."""
    note("started", f"m{i}")
    time.sleep(seconds)
    note("finished", f"m{i}")
    return 1


@tq.task(name="pgsup.collect")
def collect(ones):
    note("finished", f"collect:n={len(ones)},sum={sum(ones)}")
    return sum(ones)


@tq.task(name="pgsup.step")
def step(n=0, seconds=0.02):
    time.sleep(seconds)
    return n + 1


@tq.task(name="pgsup.crash")
def crash(key, how):
    """Kills its own process on every delivery: SIGKILL (an OOM kill) or os._exit(1)."""
    note("started", key)
    if how == "exit":
        os._exit(1)
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)  # the signal is delivered before this returns
'''


class PgHarness(Harness):
    """tests/supervisor's harness with the app above: broker PostgreSQL, records in Redis."""

    def __init__(
        self, tmp_path: Path, postgres_url: str, redis_url: str, prefix: str, client: redis.Redis
    ) -> None:
        super().__init__(tmp_path, postgres_url, prefix, client)
        self.postgres_url = postgres_url
        self.record_url = redis_url
        self.procs: list[subprocess.Popen[bytes]] = []

    def load(self, mp: pytest.MonkeyPatch, options: dict[str, Any], **env: str) -> Any:
        (self.tmp_path / f"{self.module_name}.py").write_text(APP_SOURCE)
        mp.syspath_prepend(str(self.tmp_path))
        path = os.pathsep.join([str(self.tmp_path), os.environ.get("PYTHONPATH", "")])
        mp.setenv("PYTHONPATH", path.rstrip(os.pathsep))
        mp.setenv("TASKQ_TEST_BROKER_URL", self.postgres_url)
        mp.setenv("TASKQ_TEST_RECORD_URL", self.record_url)
        mp.setenv("TASKQ_TEST_PREFIX", self.prefix)
        mp.setenv("TASKQ_TEST_OPTIONS", json.dumps(options))
        for k, v in env.items():
            mp.setenv(k, v)
        app = load_app(self.app_spec)
        self.module = sys.modules[self.module_name]
        assert self.module.tq is app
        assert type(app.broker).__name__ == "PostgresBroker"
        return self.module

    def cli(self, *args: str) -> subprocess.Popen[bytes]:
        """``taskq <args> --app <this test's app>`` in a subprocess, cleaned up by stop()."""
        command = [sys.executable, "-m", "taskq_core.cli", *args, "--app", self.app_spec]
        proc = subprocess.Popen(command, cwd=self.tmp_path)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        try:
            for p in self.procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)  # a supervisor stops its children
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        finally:
            super().stop()


@pytest.fixture
def harness(
    tmp_path: Path,
    postgres_url: str,
    redis_url: str,
    prefix: str,
    redis_client: redis.Redis,
) -> Iterator[PgHarness]:
    h = PgHarness(tmp_path, postgres_url, redis_url, prefix, redis_client)
    try:
        yield h
    finally:
        try:
            h.stop()
        finally:
            drop_namespace(postgres_url, prefix)
    assert not h.errors, h.errors


def stats(app: TaskQueue, queue: str = "default") -> dict[str, int]:
    return dict(app.broker.queue_info([queue])[0].stats)


def exactly_once(h: Harness, keys: list[str]) -> dict[str, int]:
    """Every key finished exactly once and started exactly once; returns key -> pid."""
    started, finished = h.runs.started(), h.runs.finished()
    assert sorted(finished) == sorted(keys), "a task was lost"
    for k in keys:
        assert len(started[k]) == 1, f"task {k} ran {len(started[k])} times"
        assert len(finished[k]) == 1
        assert started[k][0][0] == finished[k][0][0]
    return {k: finished[k][0][0] for k in keys}


def pg_records(h: PgHarness, space: str) -> dict[str, Any]:
    """The rows of one space of the PostgreSQL ``records`` table under the test's prefix."""
    with psycopg.connect(h.postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT key, value FROM taskq.records WHERE ns = %s AND space = %s",
            (h.prefix, space),
        ).fetchall()
    return {str(k): orjson.loads(bytes(v)) for k, v in rows}


def test_taskq_worker_processes_2_runs_two_processes_on_postgres(
    harness: PgHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``taskq worker --processes 2`` on a postgresql:// app: two worker processes whose
    heartbeats (PostgreSQL records) name the supervisor, shown by ``taskq status``; both
    run tasks; SIGTERM stops everything with exit code 0 and removes the records."""
    mod = harness.load(
        monkeypatch,
        {"worker": {**FAST_WORKER, "concurrency": 2}, "supervisor": {"interval": 0.3}},
    )
    proc = harness.cli("worker", "--processes", "2", "--log-level", "WARNING")
    workers = wait_until(
        lambda: len(w := read_workers(mod.tq)) == 2 and w, 45, "two worker heartbeats"
    )
    sups = {w["supervisor"] for w in workers}
    assert len(sups) == 1
    assert None not in sups
    assert all(w["pid"] != proc.pid for w in workers)
    # they are PostgreSQL rows of the test's namespace, and nothing of them is in Redis
    assert {r["pid"] for r in pg_records(harness, "heartbeat").values()} == {
        w["pid"] for w in workers
    }
    assert not list(harness.client.scan_iter(match=f"{harness.prefix}:*worker*"))
    record = wait_until(lambda: read_autoscaler(mod.tq), 15, "the published record")[0]
    assert record["supervisor"] in sups
    assert (record["processes"], record["min"], record["max"]) == (2, 2, 2)
    assert list(pg_records(harness, "autoscaler")) == [record["supervisor"]]

    # taskq status (its JSON) shows the supervisor's two processes
    out = subprocess.run(
        [sys.executable, "-m", "taskq_core.cli", "status", "--json", "--app", harness.app_spec],
        cwd=harness.tmp_path,
        capture_output=True,
        timeout=60,
        check=True,
    )
    snap = json.loads(out.stdout)
    assert snap["prefix"] == harness.prefix
    assert snap["broker"].startswith("postgresql://")
    shown = {(w["pid"], w["supervisor"]) for w in snap["workers"]}
    assert shown == {(w["pid"], w["supervisor"]) for w in workers}

    # four 1.5 s tasks, two slots per process: both processes run tasks
    pids = {str(w["pid"]) for w in workers}
    handles = mod.tq.enqueue_many([mod.work.call(f"t{i}", 1.5) for i in range(4)])
    ran_on = {h.result(timeout=30) for h in handles}
    assert ran_on == pids
    exactly_once(harness, [f"t{i}" for i in range(4)])
    assert stats(mod.tq).get("ok") == 4

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert read_autoscaler(mod.tq) == []
    assert read_workers(mod.tq) == []
    assert pg_records(harness, "heartbeat") == {}


def test_a_sigkilled_process_is_restarted_and_its_tasks_finish_exactly_once(
    harness: PgHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 2},
            "supervisor": {"restart_backoff": 0.2, "interval": 0.5},
        },
    )
    sup = harness.start(processes=2)
    wait_until(lambda: len(harness.events("ready")) == 2, 45, "two ready processes")
    # four tasks on four slots: two on each process. Those of the killed process are slow
    # on their first run only; the survivor's are done 8 s after they start
    keys = ["a", "b", "c", "d"]
    handles = mod.tq.enqueue_many([mod.long_then_short.call(k, 8.0) for k in keys])
    started = wait_until(
        lambda: (s := harness.runs.started()) and len(s) == 4 and s, 30, "four tasks running"
    )
    by_pid: dict[int, list[str]] = {}
    for k, runs in started.items():
        by_pid.setdefault(runs[0][0], []).append(k)
    assert sorted(len(v) for v in by_pid.values()) == [2, 2], by_pid
    pid = started["a"][0][0]
    held = sorted(by_pid[pid])
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)

    for h in handles:
        assert h.result(timeout=40) != str(pid)
    finished = harness.runs.finished()
    for k in held:
        assert finished[k][0][0] != pid
        # handed back at once, not after the 30 s lease
        assert finished[k][0][1] - killed_at < 15.0, finished[k][0][1] - killed_at
    # each task finished exactly once; those of the killed process started twice
    started = harness.runs.started()
    assert sorted(finished) == keys
    for k in keys:
        assert len(finished[k]) == 1, f"task {k} finished {len(finished[k])} times"
        assert len(started[k]) == (2 if k in held else 1)
    # and its end record says so, once: succeeded, with the result of the run that finished
    for k, h in zip(keys, handles, strict=True):
        info = h.info()
        assert info["status"] == "succeeded"
        assert info["result"] == str(finished[k][0][0])
    # the supervisor saw the crash and restarted the process
    crash = harness.events("crash")
    assert [(e["pid"], e["restart_in"]) for e in crash] == [(pid, pytest.approx(0.2))]
    assert [e["why"] for e in harness.events("spawn")] == ["start", "start", "restart"]
    wait_until(
        lambda: len([c for c in sup.children() if c["ready"]]) == 2, 30, "two processes again"
    )
    assert pid not in {c["pid"] for c in sup.children()}
    s = stats(mod.tq)
    assert s.get("ok") == 4
    # the two running tasks of the killed process were handed back, each counted as a
    # delivery without an outcome (the poison rule), none left for its lease to lapse
    assert s.get("released_counted") == 2
    assert s.get("lease_expired", 0) == 0


@pytest.mark.parametrize(
    ("how", "says"),
    [("kill", "killed by signal SIGKILL (exit code -9)"), ("exit", "died: exit code 1")],
)
def test_a_task_that_crashes_its_process_is_dead_lettered_and_stalls_nothing(
    harness: PgHarness, monkeypatch: pytest.MonkeyPatch, how: str, says: str
) -> None:
    """As tests/reliability/test_crashers.py on Redis: each delivery of the crasher kills
    its process; the supervisor restarts it, the ordinary tasks all finish once, and the
    crasher is dead-lettered alone after max_deliveries, with the reason recorded."""
    mod = harness.load(
        monkeypatch,
        {
            # tasks a crash takes with it before their start reached the supervisor are
            # not handed back by it (on Redis too): their lease (5 s here) lapses
            "worker": {
                **FAST_WORKER,
                "lease_seconds": 5.0,
                "concurrency": 4,
                "max_deliveries": MAX_DELIVERIES,
            },
            "retry": {"max_retries": 0},
            "supervisor": {"restart_backoff": 0.2, "interval": 0.5},
        },
    )
    keys = [f"q{i}" for i in range(200)]
    half = len(keys) // 2
    handles = mod.tq.enqueue_many(
        [mod.work.call(k, 0.01) for k in keys[:half]]
        + [mod.crash.call("crasher", how)]
        + [mod.work.call(k, 0.01) for k in keys[half:]]
    )
    crasher = handles[half]
    began = time.monotonic()
    sup = harness.start(processes=2)

    def settled() -> bool:
        state = mod.tq.broker.get("default", crasher.id)
        return len(harness.runs.finished()) == len(keys) and (
            state is not None and state.state == "dead"
        )

    wait_until(settled, 60, "the ordinary tasks to finish and the crasher to be dead-lettered")
    took = time.monotonic() - began
    print(f"\n{how}: {len(keys)} tasks and the crasher settled in {took:.1f}s")
    # every ordinary task finished, and was settled once: a task that ran again had run
    # beside the crasher in the process it killed (handed back with it; one that had
    # finished there but whose outcome was not settled yet runs again: at least once)
    crashed = {e["pid"] for e in harness.events("crash")}
    started, finished = harness.runs.started(), harness.runs.finished()
    assert sorted(k for k in finished if k != "crasher") == sorted(keys), "a task was lost"
    for k in keys:
        assert started[k][-1][0] == finished[k][-1][0]
        earlier = {pid for pid, _ in started[k][:-1]} | {pid for pid, _ in finished[k][:-1]}
        assert earlier <= crashed, (k, started[k], finished[k])
    assert "crasher" not in finished
    assert all(h.status() == "succeeded" for h in handles if h is not crasher)
    # each delivery ran it once, and each was counted: no endless loop
    assert len(harness.runs.started()["crasher"]) == MAX_DELIVERIES
    (dead,) = mod.tq.broker.dead_list("default", 0, 10)  # no ordinary task among them
    assert dead.id == crasher.id
    error = orjson.loads(dead.error or b"")["error"]
    assert error["type"] == "WorkerCrashed", error
    assert error["message"].startswith(f"delivered {MAX_DELIVERIES} times without finishing")
    assert error["message"].endswith(says), error
    assert "worker process " in error["message"]
    info = crasher.info()
    assert info["status"] == "dead", info
    s = stats(mod.tq)
    # settled once each: as many successes as ordinary tasks, one dead letter
    assert (s.get("ok"), s.get("dead")) == (len(keys), 1)
    assert s.get("failed", 0) == 0
    # the supervisor restarted a process for every crash, without backing off for them
    crashes = harness.events("crash")
    assert len(crashes) == MAX_DELIVERIES
    assert all(e["by_task"] and e["restart_in"] == pytest.approx(0.2) for e in crashes)
    assert [e["why"] for e in harness.events("spawn")].count("restart") == MAX_DELIVERIES
    wait_until(
        lambda: len([c for c in sup.children() if c["ready"]]) == 2, 30, "two processes again"
    )
    # and the system still runs tasks
    assert mod.work.enqueue("after", 0.01).result(timeout=20)


def test_autoscaler_grows_on_a_burst_and_shrinks_back_on_postgres(
    harness: PgHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--processes auto`` between 1 and 3: a burst (backlog, waiting time, busy slots, read
    from PostgreSQL) grows it to 3, the drained queue shrinks it back to 1; the decisions
    are published in PostgreSQL's records table."""
    mod = harness.load(
        monkeypatch,
        {
            "worker": {**FAST_WORKER, "concurrency": 2},
            "retry": {"max_retries": 0},
            "supervisor": BURST_SUPERVISOR,
        },
    )
    sup = harness.start(min_processes=1, max_processes=3)
    wait_until(lambda: harness.events("ready"), 45, "the first process")
    assert sup.processes == 1
    idle = wait_until(lambda: read_autoscaler(mod.tq), 15, "an idle reading")[0]
    assert idle["inputs"]["backlog"] == 0
    assert idle["decision"] == "hold"

    keys = [f"w{i}" for i in range(60)]
    burst_at = time.monotonic()
    mod.tq.enqueue_many([mod.work.call(k, 0.5) for k in keys])
    seen: list[dict[str, Any]] = []

    def three_ready() -> bool:
        seen.extend(r for r in read_autoscaler(mod.tq) if r["supervisor"] == sup.id)
        return len([c for c in sup.children() if c["ready"] and c["active"]]) == 3

    wait_until(three_ready, 20, "three ready processes")
    grew_in = time.monotonic() - burst_at
    assert [e["why"] for e in harness.events("spawn")] == ["start", "scale up", "scale up"]
    # it scaled up on the backlog it read from PostgreSQL, and published that there
    ups = [r for r in seen if r["decision"] == "up"]
    assert ups, seen[-3:]
    assert all(r["inputs"]["backlog"] > 0 for r in ups), ups
    assert max(r["inputs"]["backlog"] for r in ups) <= len(keys)
    assert {"pressure", "utilisation", "votes", "oldest_wait"} <= set(ups[0]["inputs"])
    # the new processes took tasks
    wait_until(
        lambda: len({p for r in harness.runs.started().values() for p, _ in r}) == 3,
        20,
        "tasks on all three processes",
    )

    wait_until(lambda: len(harness.runs.finished()) == len(keys), 40, "the burst to drain")
    drained_at = time.monotonic()
    wait_until(lambda: sup.processes == 1 and len(sup.children()) == 1, 30, "back to one process")
    shrank_in = time.monotonic() - drained_at
    exactly_once(harness, keys)
    retired = harness.events("retire")
    assert [e["reason"] for e in retired] == ["scale down", "scale down"]
    exits = {e["n"]: e for e in harness.events("exit")}
    for e in retired:  # retired gracefully: exit code 0, nothing to hand back
        assert (exits[e["n"]]["code"], exits[e["n"]]["released"]) == (0, 0)
    s = stats(mod.tq)
    assert s.get("ok") == len(keys)
    assert s.get("released", 0) == 0
    assert s.get("lease_expired", 0) == 0
    assert max(e["processes"] for e in harness.events("decision")) <= 3
    # the last decision, as stored in PostgreSQL (and nothing of it in Redis)
    wait_until(
        lambda: (r := pg_records(harness, "autoscaler").get(sup.id)) and r["processes"] == 1,
        10,
        "the record of one process",
    )
    record = pg_records(harness, "autoscaler")[sup.id]
    assert (record["min"], record["max"]) == (1, 3)
    assert record["inputs"]["backlog"] == 0
    assert harness.client.exists(f"{harness.prefix}:autoscaler") == 0
    print(f"\ngrew 1->3 in {grew_in:.1f}s, shrank back in {shrank_in:.1f}s")
