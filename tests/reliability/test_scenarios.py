"""The fault suite, CI-sized: each scenario starts its own redis-server and real worker
processes, injects its faults, and classifies every task from the workers' append-only
journal (see harness.py). The long version is ``python -m tests.reliability.long``.

Lease 2 s and renewal 0.5 s unless a scenario says otherwise, so a killed worker's tasks are
due back within lease + renewal; BOUND adds 2 s for a loaded 2-core machine.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from taskq_core.errors import BrokerFull
from taskq_core.observability import alerts, health

from .harness import Report, Rig, child_pids
from .proxy import Proxy

LEASE, RENEW = 2.0, 0.5
BOUND = LEASE + RENEW + 2.0

pytestmark = [pytest.mark.slow, pytest.mark.faults]


@pytest.fixture
def rigs(tmp_path: Path) -> Iterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        rig.close()


def make(rigs: list[Rig], tmp_path: Path, **options: Any) -> Rig:
    """A Rig with this file's lease and renewal unless ``options`` (Rig's keywords) differ."""
    rig = Rig(tmp_path, **{"lease": LEASE, "renew": RENEW, **options})
    rigs.append(rig)
    return rig


def assert_nothing_lost(rep: Report) -> None:
    assert rep.lost == [], f"lost {len(rep.lost)}: {rep.lost[:20]}"
    assert rep.unexpected == [], f"ran but never enqueued: {rep.unexpected[:20]}"
    assert rep.unexplained == [], {i: rep.duplicated[i] for i in rep.unexplained[:20]}


def test_sigkill_storm(rigs: list[Rig], tmp_path: Path) -> None:
    """A random one of 3 workers SIGKILLed every 1-2 s and restarted: nothing lost, every
    duplicate was in flight on a killed process, each killed process's tasks done elsewhere
    within the bound."""
    rig = make(rigs, tmp_path)
    rig.start_workers(3, concurrency=4)
    rig.enqueue(1500, (20, 60))
    kills = rig.storm(
        (1.0, 2.0),
        until=lambda: len(rig.finished_ids()) >= 1400,
        restart=lambda: rig.start_worker(4),
        max_kills=5,
        timeout=40,
    )
    assert rig.wait_done(60), "not every task finished"
    rep = rig.report()
    assert kills >= 3
    assert_nothing_lost(rep)
    assert rep.explained_by_kill == sorted(rep.duplicated)
    assert rep.duplicated, "no kill caught a task in flight: the storm tested nothing"
    for r in rep.recoveries:  # a chained one (re-delivery killed again) spans two
        assert r.in_flight is None or r.chained or r.in_flight <= BOUND, r


def test_sigkill_storm_under_supervisor(rigs: list[Rig], tmp_path: Path) -> None:
    """The same storm on the children of ``taskq worker --processes 3``, which the
    supervisor restarts itself, handing their tasks back as soon as it sees them die."""
    rig = make(rigs, tmp_path)
    sup = rig.start_worker(4, processes=3)
    rig.enqueue(1500, (20, 60))
    kills = rig.storm(
        (1.0, 2.0),
        until=lambda: len(rig.finished_ids()) >= 1400,
        restart=lambda: None,
        pids=lambda: child_pids(sup.pid),
        max_kills=5,
        timeout=40,
    )
    assert rig.wait_done(60), "not every task finished"
    assert sup.poll() is None, "the supervisor itself died"
    rep = rig.report()
    assert kills >= 3
    assert_nothing_lost(rep)
    assert rep.explained_by_kill == sorted(rep.duplicated)
    assert rep.duplicated
    # the supervisor hands a dead child's tasks back at once, without waiting for the lease
    # (measured: about 0.15 s; a chained one, re-delivery killed again, spans two)
    for r in rep.recoveries:
        assert r.in_flight is None or r.chained or r.in_flight <= 2.0, r


def test_sigstop_past_the_lease(rigs: list[Rig], tmp_path: Path) -> None:
    """A worker frozen for lease + 2 s: its tasks run again elsewhere, its own late runs are
    refused when it wakes, and every duplicate is a task it had in flight (on waking it
    starts none of the tasks it had leased ahead: their leases lapsed)."""
    rig = make(rigs, tmp_path)
    # tasks leased ahead: the frozen worker holds some it has not started
    a, _ = rig.start_workers(2, concurrency=4, TASKQ_TEST_PREFETCH="8")
    rig.enqueue(600, (20, 60))
    deadline = time.monotonic() + 30
    while len(rig.finished_ids()) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    f = rig.stop_worker(a, LEASE + 2.0)
    assert rig.wait_done(60)
    rep = rig.report()
    assert_nothing_lost(rep)
    (rec,) = rep.recoveries
    assert rec.tasks_in_flight >= 1, "the frozen worker had nothing in flight"
    assert set(rep.reasons()) <= {"frozen"}
    assert rec.in_flight is not None
    assert rec.in_flight <= f.end - f.t + BOUND
    assert rig.stats().get("stale_acks", 0) >= 1, "the frozen worker's late outcomes counted"


def test_redis_sigkill_with_aof_loses_nothing(rigs: list[Rig], tmp_path: Path) -> None:
    """redis-server SIGKILLed mid-run and restarted from its AOF (appendfsync always):
    nothing acknowledged is lost; a duplicate only for a task in flight across the outage."""
    rig = make(rigs, tmp_path, aof=True)
    rig.start_workers(2, concurrency=4)
    rig.enqueue(800, (10, 30))
    deadline = time.monotonic() + 30
    while len(rig.finished_ids()) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    rig.kill_redis(down=0.5)
    assert rig.wait_done(60)
    rep = rig.report()
    assert_nothing_lost(rep)
    assert set(rep.reasons()) <= {"kill_redis"}
    (rec,) = rep.recoveries
    # workers back off at most 5 s between reconnect attempts
    assert rec.next_finish is not None
    assert rec.next_finish <= 0.5 + 5.0 + BOUND


def test_redis_sigkill_without_aof_loses_the_queue(rigs: list[Rig], tmp_path: Path) -> None:
    """Without persistence a SIGKILLed Redis comes back empty: the tasks still queued are
    lost, and the loss is detected: the workers, which saw the data marker before, log an
    error saying queued tasks may have been lost and raise the critical ``data_lost``
    alert, which health shows; workers reconnect and run every task enqueued afterwards."""
    rig = make(rigs, tmp_path, aof=False)
    rig.start_workers(2, concurrency=4)
    rig.enqueue(800, (10, 30))
    deadline = time.monotonic() + 30
    while len(rig.finished_ids()) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    rig.kill_redis(down=0.5)
    after = rig.enqueue(50, (10, 30), seed=7)
    assert not rig.wait_done(30, quiet=BOUND + 5.0)
    rep = rig.report()
    assert rep.lost, "a Redis without persistence came back with its queue?"
    assert set(after).isdisjoint(rep.lost), "tasks enqueued after the restart were lost"
    assert rep.unexpected == []
    assert len(rep.lost) < 800 - 100
    # detected: a worker checks the marker every tick (the renewal interval), so by now
    active = {a["key"]: a for a in alerts.state(rig.tq)["active"]}
    lost = active.get("data_lost:broker")
    assert lost is not None, f"no data_lost alert; active: {sorted(active)}"
    assert lost["severity"] == "critical"
    assert "restarted without its data" in lost["message"]
    loss = health.check(rig.tq)["components"]["broker"]["data_loss"]
    assert loss is not None, "health does not show the loss"
    assert "restarted without its data" in loss["cause"], loss
    logs = "".join(p.read_text() for p in rig.logs.glob("*.log"))
    assert "Redis lost its data" in logs
    assert "queued tasks may have been lost" in logs


def test_frozen_redis(rigs: list[Rig], tmp_path: Path) -> None:
    """redis-server SIGSTOPped for 2.5 s (under the socket timeout and the lease): the workers
    wait and go on; nothing lost, no duplicate."""
    rig = make(rigs, tmp_path, lease=5.0, renew=1.0)
    rig.start_workers(2, concurrency=4)
    rig.enqueue(800, (10, 30))
    deadline = time.monotonic() + 30
    while len(rig.finished_ids()) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    f = rig.freeze_redis(2.5)
    assert rig.wait_done(60)
    rep = rig.report()
    assert_nothing_lost(rep)
    assert rep.duplicated == {}
    (rec,) = rep.recoveries
    assert rec.next_finish is not None
    assert rec.next_finish <= f.end - f.t + 5.0


def test_maxmemory_producer_gets_an_error_and_nothing_acknowledged_is_lost(
    rigs: list[Rig], tmp_path: Path
) -> None:
    """Redis at its maxmemory (noeviction): an enqueue raises BrokerFull and writes
    nothing (no task of the refused batch ever runs); workers started while Redis is still
    full lease, run and settle every task that was accepted (fetch, renew, settle and
    release run at maxmemory: their ``allow-oom`` flag), which frees the memory."""
    rig = make(rigs, tmp_path, maxmemory="4mb")
    refused: BrokerFull | None = None
    for seed in range(1000):
        try:
            rig.enqueue(50, (1, 2), batch=50, seed=seed, pad=2000)
        except BrokerFull as exc:
            refused = exc
            break
    assert refused is not None, "50,000 tasks of 2 kB fit in 4 MB?"
    assert "maxmemory" in str(refused)
    assert isinstance(refused.__cause__, redis.exceptions.OutOfMemoryError)
    accepted = len(rig.enqueued)
    assert accepted >= 50
    admin = redis.Redis.from_url(rig.redis.url)
    info = admin.info("memory")
    assert info["used_memory"] > info["maxmemory"] * 0.95, "not full when the workers start"
    admin.close()
    rig.start_workers(2, concurrency=8)
    assert rig.wait_done(60, quiet=BOUND + 5.0), f"{len(rig.finished_ids())} of {accepted} ran"
    rep = rig.report()
    assert_nothing_lost(rep)
    assert rep.duplicated == {}


# -- crashers: a task that kills its own process on every delivery

#: delivery cap for the crasher scenarios (default 5): three deaths keep them CI-sized
MAX_DELIVERIES = 3


def wait_dead(rig: Rig, task_id: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rec = rig.tq.broker.get("default", task_id)
        if rec is not None and rec.state == "dead":
            return True
        time.sleep(0.1)
    return False


def check_crasher(rig: Rig, crasher: str) -> tuple[Report, dict[str, str]]:
    """Every ordinary task ran (lost 0, nothing unexpected); every duplicate was in flight
    on a process that a crash killed; the crasher ran exactly MAX_DELIVERIES times and is
    the only task dead-lettered. Returns the report and the crasher's error."""
    rep = rig.report()
    assert_nothing_lost(rep)
    assert set(rep.reasons()) <= {"crashed", "crashed_unsettled"}, rep.reasons()
    crashes = [f for f in rep.faults if f.kind == "crash"]
    assert len(crashes) == MAX_DELIVERIES, crashes
    first, *again = [r for r in rep.recoveries if r.kind == "crash"]
    assert first.tasks_in_flight >= 1, "the first crash cut nothing: the test tested nothing"
    # once suspect, the crasher is leased only alone: it takes no innocent task down again
    assert [r.tasks_in_flight for r in again] == [0] * len(again)
    (dead,) = rig.tq.broker.dead_list("default", 0, 10)  # no ordinary task among them
    assert dead.id == crasher
    error: dict[str, str] = orjson.loads(dead.error or b"")["error"]
    assert error["message"].startswith(f"delivered {MAX_DELIVERIES} times without finishing")
    return rep, error


@pytest.mark.parametrize(
    ("how", "says"),
    [("segv", "killed by signal SIGSEGV (exit code -11)"), ("exit", "died: exit code 1")],
)
def test_crasher_under_the_supervisor(rigs: list[Rig], tmp_path: Path, how: str, says: str) -> None:
    """A task that crashes its process (SIGSEGV, or ``os._exit(1)``) amid 600 ordinary
    tasks under ``taskq worker --processes 2``: the supervisor hands a dead child's tasks
    back at once and dead-letters the crasher after MAX_DELIVERIES deaths with a reason
    naming how its process died; nothing lost, every duplicate was in flight on a process
    the crasher killed, each crash's other tasks done elsewhere within 2 s."""
    rig = make(rigs, tmp_path, env={"TASKQ_TEST_MAX_DELIVERIES": str(MAX_DELIVERIES)})
    rig.enqueue(300, (20, 60))
    crasher = rig.enqueue_crasher(how)
    rig.enqueue(300, (20, 60), seed=1)
    sup = rig.start_worker(4, processes=2)
    assert rig.wait_done(60), "not every ordinary task finished"
    assert wait_dead(rig, crasher, 30), "the crasher was not dead-lettered"
    assert sup.poll() is None, "the supervisor itself died"
    rep, error = check_crasher(rig, crasher)
    assert error["type"] == "WorkerCrashed"
    assert error["message"].endswith(says), error
    for r in rep.recoveries:
        assert r.in_flight is None or r.chained or r.in_flight <= 2.0, r


def test_crasher_among_plain_workers(rigs: list[Rig], tmp_path: Path) -> None:
    """The same with two plain workers that the rig restarts when they die (as systemd
    would), the crasher SIGKILLing its process: its lease lapses each time, and the fetch
    that finds it lapsed MAX_DELIVERIES times dead-letters it (``PoisonTask``: its worker
    died or froze each time). Each crash's other tasks are done elsewhere within BOUND."""
    rig = make(rigs, tmp_path, env={"TASKQ_TEST_MAX_DELIVERIES": str(MAX_DELIVERIES)})
    rig.enqueue(300, (20, 60))
    crasher = rig.enqueue_crasher("kill")
    rig.enqueue(300, (20, 60), seed=1)
    rig.keep_workers(2, concurrency=4)
    assert rig.wait_done(60), "not every ordinary task finished"
    # each death costs a lease (2 s) plus a worker start on a loaded machine
    assert wait_dead(rig, crasher, 45), "the crasher was not dead-lettered"
    rep, error = check_crasher(rig, crasher)
    assert error["type"] == "PoisonTask"
    assert error["message"].endswith("its worker died or froze each time"), error
    for r in rep.recoveries:
        assert r.in_flight is None or r.chained or r.in_flight <= BOUND, r


# -- the link between one worker and Redis, through the fault proxy (proxy.py)

#: the proxied worker's socket timeout: after the link returns, a round trip already on its
#: way gives up within it, and the fetch loop retries after its back-off (at most 5 s)
LINK_SOCKET_TIMEOUT = 2.0
LINK_PROMISED = LINK_SOCKET_TIMEOUT + 5.0
#: room for a loaded 2-core machine
LINK_SLACK = 8.0


@pytest.fixture
def proxied(rigs: list[Rig], tmp_path: Path) -> Iterator[tuple[Rig, Proxy, int]]:
    """A rig with two workers: ``a`` (concurrency 2) talks to Redis directly, ``b``
    (concurrency 4, whose pid is yielded) through the fault proxy."""
    rig = make(rigs, tmp_path)
    proxy = Proxy(rig.redis.port).start()
    try:
        rig.start_worker(2)
        b = rig.start_worker(
            4, TASKQ_TEST_REDIS_URL=proxy.url, TASKQ_TEST_SOCKET_TIMEOUT=str(LINK_SOCKET_TIMEOUT)
        )
        yield rig, proxy, b.pid
    finally:
        proxy.stop()


def journal_of(rig: Rig, pid: int) -> list[tuple[str, str, float]]:
    """``(kind, id, t)`` of every whole line process ``pid`` journaled so far."""
    path = rig.journal / f"{pid}.log"
    if not path.exists():
        return []
    lines = path.read_bytes().decode().splitlines(keepends=True)
    return [(k, i, float(t)) for k, i, _, t in (x.split() for x in lines if x.endswith("\n"))]


def wait_for_runs(rig: Rig, pid: int, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(k == "finish" for k, _, _ in journal_of(rig, pid)) < n:
        assert time.monotonic() < deadline, f"worker {pid} did not finish {n} tasks"
        time.sleep(0.05)


def first_start_of(rig: Rig, pid: int, ids: list[str], timeout: float) -> float | None:
    """When worker ``pid`` first started one of ``ids`` (wall clock), waiting up to
    ``timeout`` seconds."""
    want = set(ids)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        starts = [t for k, i, t in journal_of(rig, pid) if k == "start" and i in want]
        if starts:
            return min(starts)
        time.sleep(0.05)
    return None


def test_half_open_link(proxied: tuple[Rig, Proxy, int]) -> None:
    """The link of one of two workers goes half-open (the proxy keeps its connections open
    and drops every byte) for lease + 3 s, then returns: that worker's tasks run again on
    the other one, its late outcomes are refused, nothing is lost, and once the link is
    back it fetches again within socket timeout + 5 s (asserted with LINK_SLACK more)."""
    rig, proxy, b = proxied
    rig.enqueue(600, (20, 60))
    wait_for_runs(rig, b, 30)
    t = time.time()
    proxy.blackhole()
    time.sleep(LEASE + 3.0)
    proxy.passthrough()
    f = rig.record_fault("link_blackhole", b, t, time.time())
    # enough work that the direct worker alone (2 at once) needs about 15 s for it
    after = rig.enqueue(400, (50, 100), seed=2)
    back = first_start_of(rig, b, after, LINK_PROMISED + LINK_SLACK)
    assert back is not None, "the worker did not fetch again after its link returned"
    print(f"\nhalf-open link: worker fetched again {back - f.end:.2f}s after the link returned")
    assert back - f.end <= LINK_PROMISED + LINK_SLACK
    assert rig.wait_done(60), "not every task finished"
    rep = rig.report()
    assert_nothing_lost(rep)
    assert set(rep.reasons()) <= {"link_blackhole"}, rep.reasons()
    assert rep.duplicated, "the cut-off worker held nothing the other one ran again"
    assert rig.stats().get("stale_acks", 0) >= 1, "the cut-off worker's late outcomes counted"


def test_slow_link(proxied: tuple[Rig, Proxy, int]) -> None:
    """The link of one of two workers delays every chunk by 0.2 s both ways for 6 s (a
    round trip takes at least 0.4 s, well under the socket timeout and the lease): that
    worker keeps fetching and finishing tasks through it, nothing is lost, and no lease
    lapses: not a single duplicate."""
    rig, proxy, b = proxied
    rig.enqueue(1200, (20, 60))
    wait_for_runs(rig, b, 30)
    t = time.time()
    proxy.slow(0.2)
    time.sleep(6.0)
    proxy.passthrough()
    f = rig.record_fault("link_slow", b, t, time.time())
    assert rig.wait_done(60), "not every task finished"
    # started after the first second of the slow link: fetched through it
    through = [i for k, i, s in journal_of(rig, b) if k == "start" and f.t + 1.0 < s < f.end]
    print(f"\nslow link: {len(through)} tasks started through it in {f.end - f.t - 1:.1f}s")
    assert len(through) >= 8, "the worker made no progress over the slow link"
    rep = rig.report()
    assert_nothing_lost(rep)
    assert rep.duplicated == {}


def test_worker_clock_far_ahead(rigs: list[Rig], tmp_path: Path) -> None:
    """One of two workers has a clock 30 s ahead (``TASKQ_TEST_CLOCK_OFFSET``, a
    SystemClock subclass like a real host's clock): leases run on Redis's clock, so it
    expires nobody's live lease (its fetch would otherwise see every other lease as lapsed
    long ago) and its own leases are not stretched: no duplicate at all, nothing lost, and
    both workers run tasks."""
    rig = make(rigs, tmp_path)
    ahead = rig.start_worker(4, TASKQ_TEST_CLOCK_OFFSET="30")
    normal = rig.start_worker(4)
    rig.enqueue(1000, (20, 60))
    assert rig.wait_done(60), "not every task finished"
    rep = rig.report()
    assert_nothing_lost(rep)
    assert rep.duplicated == {}
    for w in (ahead, normal):
        ran = sum(k == "finish" for k, _, _ in journal_of(rig, w.pid))
        assert ran >= 50, f"worker {w.pid} ran only {ran} tasks"
