"""Flow-control limits hold cluster-wide: three worker processes (``taskq worker``, real
processes on a real Redis, or a real PostgreSQL) share one rate limit and one concurrency
cap, per key too, and a slot held by a process that is SIGKILLed frees itself within the
lease time. The tasks record their starts in Redis (the probe) on either broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from taskq_core import TaskQueue
from tests.cli.conftest import clean_environ
from tests.conftest import drop_namespace
from tests.procs import stop_processes

pytestmark = pytest.mark.slow

APP = """
import os
import time

import redis

from taskq_core import TaskQueue

tq = TaskQueue.from_config()
r = redis.Redis.from_url(os.environ["PROBE_REDIS_URL"])
P = os.environ["TASKQ_KEY_PREFIX"] + ":probe:"
HOLD = 0.05

# one start time per task, and the running count of each key, kept in Redis by the tasks
_RUN = r.register_script('''
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
''')


def _start(name, key):
    r.rpush(P + "starts:" + key, repr(time.time()))
    _RUN(keys=[P + "running:" + key, P + "max:" + key])


def _end(key):
    r.decr(P + "running:" + key)
    r.incr(P + "done")


@tq.task(name="rl", rate_limit="40/s", rate_burst=4)
def rl(i):
    _start("rl", "all")
    _end("all")


@tq.task(name="rl_key", rate_limit="10/s", rate_burst=1, rate_key=lambda account, i: account)
def rl_key(account, i):
    _start("rl_key", account)
    _end(account)


@tq.task(name="capped", max_concurrency=3)
def capped(i):
    _start("capped", "all")
    time.sleep(HOLD)
    _end("all")


@tq.task(name="one_per_account", max_concurrency=1,
         concurrency_key=lambda account, seconds: account)
def one_per_account(account, seconds):
    _start("one", account)
    time.sleep(seconds)
    _end(account)
"""


class Cluster:
    """Worker processes on one app module, and the probe keys their tasks write."""

    def __init__(
        self, tmp: Path, url: str, probe_url: str, prefix: str, mp: pytest.MonkeyPatch
    ) -> None:
        (tmp / "limitsapp.py").write_text(APP)
        self.env = clean_environ()
        self.env.update(
            TASKQ_BROKER_URL=url,
            PROBE_REDIS_URL=probe_url,
            TASKQ_KEY_PREFIX=prefix,
            PYTHONPATH=os.pathsep.join([str(tmp), self.env["PYTHONPATH"]]),
            TASKQ_WORKER__LEASE_SECONDS="2",
            TASKQ_WORKER__RENEW_INTERVAL="0.5",
            TASKQ_WORKER__GRACE_PERIOD="1",
        )
        self.cwd = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.r = redis.Redis.from_url(probe_url)
        self.probe = prefix + ":probe:"
        # the same module in this process, as the producer: it declares the same limits
        sys.path.insert(0, str(tmp))
        mp.setenv("TASKQ_BROKER_URL", url)
        mp.setenv("PROBE_REDIS_URL", probe_url)
        mp.setenv("TASKQ_KEY_PREFIX", prefix)
        import limitsapp  # type: ignore[import-not-found]

        self.app = limitsapp
        self.tq: TaskQueue = limitsapp.tq

    def start(self, n: int = 3, concurrency: int = 8) -> None:
        for _ in range(n):
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "taskq_core.cli",
                        "worker",
                        "--app",
                        "limitsapp:tq",
                        "--concurrency",
                        str(concurrency),
                        "--log-level",
                        "WARNING",
                    ],
                    cwd=self.cwd,
                    env=self.env,
                )
            )

    def enqueue(self, name: str, calls: list[tuple[object, ...]]) -> None:
        task = self.tq.registry[name]
        self.tq.enqueue_many([task.call(*args) for args in calls])

    def wait_done(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if int(self.r.get(self.probe + "done") or 0) >= n:
                return
            time.sleep(0.05)
        done = int(self.r.get(self.probe + "done") or 0)
        raise AssertionError(f"only {done} of {n} tasks done")

    def starts(self, key: str) -> list[float]:
        return sorted(float(x) for x in self.r.lrange(self.probe + "starts:" + key, 0, -1))

    def most_at_once(self, key: str) -> int:
        return int(self.r.get(self.probe + "max:" + key) or 0)

    def stop(self) -> None:
        stop_processes(self.procs)
        self.tq.close()
        sys.modules.pop("limitsapp", None)
        sys.path.remove(str(self.cwd))


@pytest.fixture(params=["redis", pytest.param("postgres", marks=pytest.mark.postgres)])
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cluster]:
    url = redis_url
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
    c = Cluster(tmp_path, url, redis_url, prefix, monkeypatch)
    try:
        yield c
    finally:
        c.stop()
        if request.param == "postgres":
            drop_namespace(url, prefix)


def window_max(times: list[float], width: float = 1.0) -> int:
    """The most starts in any window of ``width`` seconds."""
    most, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - width:
            j += 1
        most = max(most, i - j + 1)
    return most


def test_a_rate_limit_holds_across_three_processes(cluster: Cluster) -> None:
    cluster.enqueue("rl", [(i,) for i in range(200)])
    cluster.start(3)
    cluster.wait_done(200, 30)
    starts = cluster.starts("all")
    assert len(starts) == 200
    # GCRA: at most limit x seconds + burst leases in any window, and the limit kept over
    # the run. The starts are read in the worker processes, a dispatch after the lease: a
    # delay of up to 100 ms on a loaded 2-core machine moves four more into a window (40/s
    # for 0.1 s; CI runs showed 45 and 47 for 44 in one-second windows), so the windows
    # are two seconds long, where that jitter is a smaller part of what they hold
    assert window_max(starts, 2.0) <= 2 * 40 + 4 + 4
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 36 <= rate <= 44, rate
    (q,) = cluster.tq.broker.queue_info(["default"])
    assert q.stats["throttled"] >= 150  # held back, not run and not counted as attempts
    assert q.stats.get("retry", 0) == 0


def test_a_rate_limit_per_key_gives_each_key_its_own_rate(cluster: Cluster) -> None:
    cluster.enqueue("rl_key", [(acct, i) for i in range(30) for acct in ("acme", "globex")])
    cluster.start(3)
    cluster.wait_done(60, 30)
    for acct in ("acme", "globex"):
        starts = cluster.starts(acct)
        assert len(starts) == 30
        assert window_max(starts) <= 10 + 1
        # both keys ran side by side: 30 each at 10/s take about 3 s, not 6
        assert starts[-1] - starts[0] < 4.5


def test_a_concurrency_cap_holds_across_three_processes(cluster: Cluster) -> None:
    cluster.enqueue("capped", [(i,) for i in range(90)])
    cluster.start(3, concurrency=8)
    cluster.wait_done(90, 30)
    assert cluster.most_at_once("all") == 3  # reached, never exceeded
    starts = cluster.starts("all")
    # 90 tasks of 50 ms, 3 at a time: about 1.5 s
    assert starts[-1] - starts[0] < 6


def test_a_slot_held_by_a_killed_process_frees_itself_within_the_lease(
    cluster: Cluster,
) -> None:
    """One sync per account: the process running acme's first sync is SIGKILLed; the next
    acme sync starts within the lease (2 s) plus a renewal, and never beside another; the
    killed one is not lost (it runs again, alone, as a suspect)."""
    cluster.start(3, concurrency=4)
    cluster.enqueue("one_per_account", [("acme", 30.0)])
    deadline = time.monotonic() + 20
    while not cluster.starts("acme") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cluster.starts("acme"), "the first sync never started"
    cluster.enqueue("one_per_account", [("acme", 0.1), ("acme", 0.1), ("globex", 0.1)])
    time.sleep(0.5)
    assert len(cluster.starts("acme")) == 1  # the others wait for the slot
    # find and kill the process holding the slot (the one whose worker is busy)
    holder = None
    deadline = time.monotonic() + 10
    while holder is None and time.monotonic() < deadline:
        holder = next((p for p in cluster.procs if _busy(cluster, p.pid)), None)
        time.sleep(0.1)
    assert holder is not None, "no worker said it was busy"
    killed_at = time.time()
    holder.send_signal(signal.SIGKILL)
    holder.wait(10)
    # the killed sync is not running any more, though it never said so: count afresh
    cluster.r.set(cluster.probe + "running:acme", 0)
    cluster.r.set(cluster.probe + "max:acme", 0)
    deadline = time.monotonic() + 20
    while len(cluster.starts("acme")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    acme = cluster.starts("acme")
    assert len(acme) >= 2, "the slot never came back"
    handover = acme[1] - killed_at
    assert handover < 2.0 + 1.5, handover  # lease 2 s, plus a fetch and a renewal
    # never two at once; 0 when the next sync started and ended before the counts were
    # reset just after the kill (PostgreSQL hands the slot over that quickly: a CI run)
    assert cluster.most_at_once("acme") <= 1
    assert cluster.starts("globex")  # another key was never held up


def _busy(cluster: Cluster, pid: int) -> bool:
    from taskq_core.observability.heartbeat import read_workers

    for record in read_workers(cluster.tq):
        if record.get("pid") == pid and record.get("busy"):
            return True
    return False
