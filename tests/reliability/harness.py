"""The fault harness: a private ``redis-server``, real worker processes, an append-only journal
of every run, the faults injected, and a classifier that says for every task whether it was
ok, lost, duplicated or unexpected, and why each duplicate ran twice.

A scenario is three parts on one :class:`Rig`: its setup (``Rig(...)``, ``rig.start_workers``
or ``rig.keep_workers``, ``rig.enqueue``), its fault schedule (``rig.kill_worker``,
``rig.stop_worker``, ``rig.kill_redis``, ``rig.freeze_redis``, :meth:`Rig.storm`,
``rig.enqueue_crasher``, or a fault injected elsewhere, such as the proxy's, logged with
``rig.record_fault``) and its expectations (on the :class:`Report` of ``rig.report()``).
Used by ``test_scenarios.py`` (CI-sized) and by ``long.py`` (the long run).

Times in the journal and in the fault log are wall-clock seconds (``time.time()``) of the same
machine, so runs and faults from different processes line up.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from taskq_core import TaskQueue

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.reliability.journalapp:tq"
TASK, ATASK, CRASH = "rel.journal", "rel.ajournal", "rel.crash"
PREFIX = "rel"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """The worker processes of a supervisor (Linux /proc): its children started by
    multiprocessing's spawn, not its resource tracker."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    out = []
    for child in text.split():
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            out.append(int(child))
    return out


# -- Redis


class RedisServer:
    """A private ``redis-server`` on a free loopback port, in its own directory, so a test can
    kill, freeze and restart it. ``aof``: append-only file with ``appendfsync always``;
    ``maxmemory``: a limit with ``noeviction`` (writes past it are refused)."""

    def __init__(
        self, workdir: Path, *, aof: bool = False, maxmemory: str | None = None, port: int = 0
    ) -> None:
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.aof = aof
        self.maxmemory = maxmemory
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def args(self) -> list[str]:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("the fault tests need redis-server on PATH")
        args = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--save", "", "--logfile", str(self.dir / "redis.log")]
        if self.aof:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            args += ["--appendonly", "no"]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        return args

    def start(self, timeout: float = 20.0) -> None:
        self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():  # LOADING (an AOF being read) is an error: keep waiting
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not come up")
                time.sleep(0.02)
        finally:
            client.close()

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; what is in the AOF (if any) is what survives."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


# -- the journal and the classifier


@dataclass
class RunRecord:
    """One run of a task on one process: its start and, unless it was cut, its finish."""

    id: str
    pid: int
    start: float
    finish: float | None = None


@dataclass
class Fault:
    """A fault injected at ``t`` (wall clock), on process ``pid`` (a worker, or redis-server),
    lasting until ``end`` (SIGCONT, or the restart of a killed Redis; ``t`` for a kill)."""

    kind: str  # kill_worker | stop_worker | crash | link_* | kill_redis | freeze_redis | ...
    t: float
    pid: int
    end: float = 0.0

    def __post_init__(self) -> None:
        self.end = self.end or self.t

    @property
    def on_worker(self) -> bool:
        """A fault of the process ``pid`` itself: SIGKILL, SIGSTOP, or a crash (a task that
        killed its own process, journaled as ``crash``)."""
        return self.kind in ("kill_worker", "stop_worker", "crash")

    @property
    def on_link(self) -> bool:
        """A fault of the link between worker ``pid`` and Redis (``link_blackhole``,
        ``link_slow``, ...): it explains only that worker's runs."""
        return self.kind.startswith("link_")


def crash_faults(events: Iterable[tuple[str, str, int, float]]) -> list[Fault]:
    """A ``crash <id> <pid> <t>`` journal line is a fault: process ``pid`` died at ``t``."""
    return [Fault("crash", t, pid) for kind, _, pid, t in events if kind == "crash"]


def read_journal(directory: Path) -> list[tuple[str, str, int, float]]:
    """Every ``(kind, id, pid, t)`` line of every process's file, in time order. A line
    without its newline (a write cut by a kill) is ignored."""
    events: list[tuple[str, str, int, float]] = []
    for path in directory.glob("*.log"):
        for line in path.read_bytes().decode().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue
            kind, label, pid, t = line.split()
            events.append((kind, label, int(pid), float(t)))
    events.sort(key=lambda e: e[3])
    return events


def pair_runs(events: Iterable[tuple[str, str, int, float]]) -> dict[str, list[RunRecord]]:
    """Runs by task id: each start, with the finish the same process wrote for it (a
    ``crash`` line is a fault, not a run: see :func:`crash_faults`)."""
    runs: dict[str, list[RunRecord]] = defaultdict(list)
    open_: dict[tuple[str, int], list[RunRecord]] = defaultdict(list)
    for kind, label, pid, t in events:
        if kind == "crash":
            continue
        if kind == "start":
            r = RunRecord(label, pid, t)
            runs[label].append(r)
            open_[(label, pid)].append(r)
        elif open_[(label, pid)]:
            open_[(label, pid)].pop(0).finish = t
        else:  # a finish with no start: a journal that lies; show it, never drop it
            runs[label].append(RunRecord(label, pid, t, t))
    return dict(runs)


def in_flight(run: RunRecord, t: float) -> bool:
    return run.start <= t and (run.finish is None or run.finish > t)


#: a worker whose link to Redis returns and starts a task within this many seconds may have
#: started one it had leased before the link went bad
WOKEN_S = 1.0

_DIED = {"kill_worker": "killed", "stop_worker": "frozen", "crash": "crashed"}


def why_extra(
    run: RunRecord, next_start: float | None, faults: Sequence[Fault], lease: float
) -> str | None:
    """The fault that explains a run that did not count, or ``None``. ``next_start`` is when
    the task's next run began (``None`` for its last run), ``lease`` the workers' lease.

    - ``killed``: cut by a SIGKILL of its process (started before, no finish).
    - ``crashed`` / ``crashed_unsettled``: the same for a process that a task killed
      (a ``crash`` line in the journal, see journalapp.py).
    - ``killed_unsettled``: finished before its process was SIGKILLed, but the task ran again
      only after the kill, while the lease taken for this run could not yet have lapsed
      (it started less than ``lease`` before the kill): the process held the task, its
      outcome not yet accepted, when it died. (A worker sends outcomes with its next round
      trip, and stops renewing a task's lease when it finishes: a process starved of CPU
      before the kill can hold a finished task for a while.)
    - ``frozen``: in flight when its process was SIGSTOPped, or finished but re-run only
      after the freeze began, as above.
    - a link fault's kind (``link_blackhole``, ``link_slow``): a run on that worker, in
      flight or its outcome unsent during the fault, or started within WOKEN_S after it (a
      task leased before the link went bad, whose lease lapsed meanwhile).
    - a Redis fault's kind (``kill_redis``, ``freeze_redis``, or any other kind that is not
      a worker's or a link's): the run was in flight, or its outcome unsent, during that
      fault.
    """
    for f in faults:
        if f.on_worker and f.pid == run.pid and run.start < f.t:
            what = _DIED[f.kind]
            if run.finish is None:
                return what
            if run.finish > f.t:
                if f.kind == "stop_worker":
                    return what
                continue
            rerun_after = next_start is None or next_start > f.t
            if rerun_after and run.start > f.t - lease:
                return what if f.kind == "stop_worker" else what + "_unsettled"
        if f.on_link and f.pid != run.pid:
            continue
        if f.on_link and 0 <= run.start - f.end < WOKEN_S:
            return f.kind
        if not f.on_worker and run.start <= f.end:
            if run.finish is None or run.finish >= f.t:
                return f.kind
            if (next_start is None or next_start > f.t) and run.start > f.t - lease:
                return f.kind
    return None


@dataclass
class Recovery:
    """How long after a fault the work went on: ``next_finish``, the first finish anywhere
    after the fault ended; ``in_flight``, for a worker fault, until the last task it had in
    flight finished elsewhere (``None`` if it had none, or one never did); ``chained``, one
    of those tasks was cut again elsewhere before it finished (a later kill caught its
    re-delivery), so ``in_flight`` spans more than one recovery."""

    kind: str
    t: float
    next_finish: float | None
    in_flight: float | None
    tasks_in_flight: int
    chained: bool = False


@dataclass
class Report:
    """Every enqueued task classified, and the faults with their recovery times."""

    enqueued: int
    ok: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, list[str | None]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    recoveries: list[Recovery] = field(default_factory=list)

    @property
    def unexplained(self) -> list[str]:
        """Duplicates with a run that no fault explains (``None`` among their reasons)."""
        return sorted(i for i, why in self.duplicated.items() if None in why)

    @property
    def explained_by_death(self) -> list[str]:
        """Duplicates whose every extra run was cut by (or unsettled at) the death of its
        process: a SIGKILL or a crash."""
        died = {"killed", "killed_unsettled", "crashed", "crashed_unsettled"}
        return sorted(i for i, why in self.duplicated.items() if set(why) <= died)

    @property
    def explained_by_kill(self) -> list[str]:
        """Duplicates whose every extra run was cut by (or unsettled at) a worker's SIGKILL."""
        kill = {"killed", "killed_unsettled"}
        return sorted(i for i, why in self.duplicated.items() if set(why) <= kill)

    def reasons(self) -> dict[str, int]:
        """How many extra runs each reason explains (``None``: unexplained)."""
        out: dict[str, int] = defaultdict(int)
        for why in self.duplicated.values():
            for w in why:
                out[str(w)] += 1
        return dict(out)

    def summary(self) -> dict[str, Any]:
        def stats(xs: list[float]) -> dict[str, float | int]:
            xs = sorted(xs)
            if not xs:
                return {"n": 0}
            return {
                "n": len(xs),
                "median": round(xs[len(xs) // 2], 3),
                "max": round(xs[-1], 3),
            }

        kinds: dict[str, int] = defaultdict(int)
        for f in self.faults:
            kinds[f.kind] += 1
        return {
            "tasks": self.enqueued,
            "ok": len(self.ok),
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "duplicates_explained_by_kill": len(self.explained_by_kill),
            "duplicates_explained_by_death": len(self.explained_by_death),
            "duplicates_unexplained": len(self.unexplained),
            "extra_runs_by_reason": self.reasons(),
            "unexpected": len(self.unexpected),
            "faults": dict(kinds),
            "recovery_next_finish_s": stats(
                [r.next_finish for r in self.recoveries if r.next_finish is not None]
            ),
            "recovery_in_flight_s": stats(
                [r.in_flight for r in self.recoveries if r.in_flight is not None and not r.chained]
            ),
            "recovery_in_flight_chained_s": stats(
                [r.in_flight for r in self.recoveries if r.in_flight is not None and r.chained]
            ),
        }


def classify(
    enqueued: Iterable[str],
    runs: dict[str, list[RunRecord]],
    faults: Sequence[Fault],
    lease: float,
) -> Report:
    """ok: one run, finished. lost: never finished. duplicated: more than one run (with, for
    each run but the one that counts, the fault that explains it or ``None``). unexpected:
    ran, but was never enqueued (or its enqueue raised)."""
    ids = set(enqueued)
    rep = Report(len(ids), faults=list(faults))
    for i in sorted(ids):
        rs = runs.get(i, [])
        finished = [r for r in rs if r.finish is not None]
        if not finished:
            rep.lost.append(i)
        elif len(rs) == 1:
            rep.ok.append(i)
        else:
            # one run counts (the journal cannot say which settle was accepted): every
            # other run needs a fault to explain it, so one unexplained run is dropped, or,
            # if all are explained, that of the last to finish
            rs = sorted(rs, key=lambda r: r.start)
            nexts: list[float | None] = [r.start for r in rs[1:]]
            why = [why_extra(r, n, faults, lease) for r, n in zip(rs, [*nexts, None], strict=True)]
            keep = (
                why.index(None)
                if None in why
                else rs.index(max(finished, key=lambda r: r.finish or 0.0))
            )
            rep.duplicated[i] = why[:keep] + why[keep + 1 :]
    rep.unexpected = sorted(set(runs) - ids)
    all_finishes = sorted(r.finish for rs in runs.values() for r in rs if r.finish is not None)
    for f in faults:
        nxt = next((t for t in all_finishes if t > f.end), None)
        cut = []
        if f.on_worker:
            cut = [
                r.id
                for rs in runs.values()
                for r in rs
                if r.pid == f.pid
                and in_flight(r, f.t)
                and (f.kind == "stop_worker" or not r.finish)
            ]
        done = []
        for i in cut:
            later = [r.finish for r in runs[i] if r.pid != f.pid and r.finish and r.finish > f.t]
            if later:
                done.append(min(later))
        rec = None
        if cut and len(done) == len(cut):
            rec = max(done) - f.t
        chained = any(
            r.pid != f.pid and r.start > f.t and r.finish is None for i in cut for r in runs[i]
        )
        rep.recoveries.append(
            Recovery(f.kind, f.t, None if nxt is None else nxt - f.t, rec, len(cut), chained)
        )
    return rep


# -- the rig


class Rig:
    """One scenario's world: a private Redis, worker processes, the journal, the producer
    application, and the log of faults injected."""

    def __init__(
        self,
        workdir: Path,
        *,
        lease: float = 3.0,
        renew: float = 1.0,
        aof: bool = False,
        maxmemory: str | None = None,
        socket_timeout: float = 10.0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.journal = workdir / "journal"
        self.journal.mkdir(parents=True, exist_ok=True)
        self.logs = workdir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.redis = RedisServer(workdir, aof=aof, maxmemory=maxmemory)
        self.redis.start()
        self.lease, self.renew = lease, renew
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "TASKQ_TEST_REDIS_URL": self.redis.url,
            "TASKQ_TEST_PREFIX": PREFIX,
            "TASKQ_TEST_JOURNAL": str(self.journal),
            "TASKQ_TEST_LEASE": str(lease),
            "TASKQ_TEST_RENEW": str(renew),
            "TASKQ_TEST_SOCKET_TIMEOUT": str(socket_timeout),
            **(env or {}),
        }
        self.tq = TaskQueue(self.redis.url, key_prefix=PREFIX, retry={"max_retries": 0})
        for name in (TASK, ATASK, CRASH):  # registered here only to enqueue them by name
            self.tq.task(name=name)(lambda *a, **k: None)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.enqueued: list[str] = []
        #: crash tasks by label (not in ``enqueued``: they never finish), with their task id
        self.crashers: dict[str, str] = {}
        self.faults: list[Fault] = []
        self._keeper: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._n = 0
        self._offsets: dict[str, int] = {}
        self._finished: set[str] = set()

    # setup

    def start_worker(
        self, concurrency: int = 4, processes: int | None = None, **env: str
    ) -> subprocess.Popen[bytes]:
        """One ``taskq worker`` (a supervisor of ``processes`` children if given)."""
        args = [sys.executable, "-m", "taskq_core.cli", "worker", "--app", APP]
        args += ["--concurrency", str(concurrency), "--log-level", "WARNING"]
        if processes is not None:
            args += ["--processes", str(processes)]
        with self._lock:
            self._n += 1
            log = (self.logs / f"worker-{self._n}.log").open("wb")
        # output to a file, never a pipe nobody reads (a full pipe would block the worker)
        proc = subprocess.Popen(
            args, env={**self.env, **env}, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        with self._lock:
            self.workers.append(proc)
        return proc

    def start_workers(self, n: int, concurrency: int = 4, **kw: Any) -> list[int]:
        return [self.start_worker(concurrency, **kw).pid for _ in range(n)]

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        with self._lock:
            return [p for p in self.workers if p.poll() is None]

    def enqueue(
        self,
        n: int,
        ms: tuple[float, float] = (5, 20),
        *,
        batch: int = 1000,
        seed: int = 0,
        pad: int = 0,
    ) -> list[str]:
        """Enqueue ``n`` journal tasks of ``ms`` milliseconds (uniform) in batches, each
        message ``pad`` bytes bigger; an id counts as enqueued once its batch's enqueue
        returned (an enqueue that raises propagates, its batch not counted)."""
        rng = random.Random(seed)
        start = len(self.enqueued)
        labels = [f"t{start + k}" for k in range(n)]
        for k in range(0, n, batch):
            part = labels[k : k + batch]
            sigs = [self.tq.signature(TASK, [label, round(rng.uniform(*ms), 2)]) for label in part]
            self.tq.enqueue_many(sigs)
            self.enqueued.extend(part)
        return labels

    def enqueue_crasher(self, how: str = "kill") -> str:
        """Enqueue one task that kills the process running it (journalapp's ``rel.crash``:
        ``kill``, ``segv`` or ``exit``) on every delivery; returns its task id."""
        label = f"crash{len(self.crashers)}"
        handle = self.tq.enqueue(CRASH, [label, how])
        self.crashers[label] = handle.id
        return handle.id

    def keep_workers(self, n: int, concurrency: int = 4, **kw: Any) -> None:
        """Start ``n`` workers and, until :meth:`close`, start a new one whenever one dies
        (a crash, a kill), as a process manager would: checked every 0.1 s."""
        self.start_workers(n, concurrency, **kw)

        def keep() -> None:
            while not self._closing.wait(0.1):
                for _ in range(n - len(self.live_workers())):
                    self.start_worker(concurrency, **kw)

        self._keeper = threading.Thread(target=keep, name="taskq-test-keeper", daemon=True)
        self._keeper.start()

    # faults

    def record_fault(self, kind: str, pid: int, t: float, end: float = 0.0) -> Fault:
        """Log a fault injected here or elsewhere (a proxy cutting the link, say) so the
        classifier can explain the runs it touched."""
        f = Fault(kind, t, pid, end)
        with self._lock:
            self.faults.append(f)
        return f

    def kill_worker(self, pid: int) -> Fault:
        t = time.time()
        os.kill(pid, signal.SIGKILL)
        return self.record_fault("kill_worker", pid, t)

    def stop_worker(self, pid: int, seconds: float) -> Fault:
        t = time.time()
        os.kill(pid, signal.SIGSTOP)
        time.sleep(seconds)
        os.kill(pid, signal.SIGCONT)
        return self.record_fault("stop_worker", pid, t, time.time())

    def kill_redis(self, down: float = 0.5) -> Fault:
        """SIGKILL redis-server, wait ``down`` seconds, start it again on the same port and
        directory (with AOF, it reloads what was fsynced)."""
        assert self.redis.proc is not None
        pid, t = self.redis.proc.pid, time.time()
        self.redis.kill()
        time.sleep(down)
        self.redis.start()
        return self.record_fault("kill_redis", pid, t, time.time())

    def freeze_redis(self, seconds: float) -> Fault:
        assert self.redis.proc is not None
        pid, t = self.redis.proc.pid, time.time()
        self.redis.signal(signal.SIGSTOP)
        time.sleep(seconds)
        self.redis.signal(signal.SIGCONT)
        return self.record_fault("freeze_redis", pid, t, time.time())

    def storm(
        self,
        every: tuple[float, float],
        until: Callable[[], bool],
        *,
        restart: Callable[[], object],
        pids: Callable[[], list[int]] | None = None,
        seed: int = 1,
        max_kills: int | None = None,
        timeout: float = 600.0,
    ) -> int:
        """SIGKILL a random worker (from ``pids()``, default the live top-level workers) every
        ``every`` seconds (uniform) until ``until()`` (or ``max_kills``, or ``timeout``),
        calling ``restart()`` after each kill (``lambda: None`` when a supervisor restarts
        its children). Returns the number of kills."""
        rng = random.Random(seed)
        kills = 0
        stop_at = time.monotonic() + timeout
        while not until() and (max_kills is None or kills < max_kills):
            if time.monotonic() > stop_at:
                break
            end = time.monotonic() + rng.uniform(*every)
            while time.monotonic() < end and not until():
                time.sleep(0.1)
            if until():
                break
            live = pids() if pids is not None else [p.pid for p in self.live_workers()]
            if not live:
                continue
            self.kill_worker(rng.choice(live))
            kills += 1
            restart()
        return kills

    # waiting and results

    def finished_ids(self) -> set[str]:
        """Ids with a finish in the journal so far (read on from where the last call
        stopped, so polling a journal of 100,000 lines stays cheap)."""
        for path in self.journal.glob("*.log"):
            with path.open("rb") as fh:
                fh.seek(self._offsets.get(path.name, 0))
                chunk = fh.read()
            # only whole lines: a line being written is read next time
            cut = chunk.rfind(b"\n") + 1
            self._offsets[path.name] = self._offsets.get(path.name, 0) + cut
            for line in chunk[:cut].decode().splitlines():
                if line.startswith("finish "):
                    self._finished.add(line.split()[1])
        return set(self._finished)

    def wait_done(self, timeout: float, quiet: float | None = None, poll: float = 0.25) -> bool:
        """Wait until every enqueued task has finished (True), or ``timeout`` passes, or
        (with ``quiet``) no task finished for ``quiet`` seconds (False)."""
        want = set(self.enqueued)
        deadline = time.monotonic() + timeout
        seen, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            done = self.finished_ids()
            if want <= done:
                return True
            if len(done) != seen:
                seen, last_change = len(done), time.monotonic()
            elif quiet is not None and time.monotonic() - last_change > quiet:
                return False
            time.sleep(poll)
        return False

    def report(self) -> Report:
        """Every enqueued task classified, against the faults injected and the crashes the
        journal recorded."""
        events = read_journal(self.journal)
        faults = sorted([*self.faults, *crash_faults(events)], key=lambda f: f.t)
        return classify(self.enqueued, pair_runs(events), faults, self.lease)

    def stats(self) -> dict[str, int]:
        """The default queue's counters (ok, stale_acks, lease_expired, ...)."""
        r = redis.Redis.from_url(self.redis.url, socket_timeout=5, decode_responses=True)
        try:
            raw = r.hgetall(f"{PREFIX}:{{default}}:stats")
        finally:
            r.close()
        return {str(k): int(v) for k, v in raw.items()}

    def close(self) -> None:
        self._closing.set()
        if self._keeper is not None:
            self._keeper.join(10)
        for p in self.live_workers():
            for pid in child_pids(p.pid):
                with_suppressed(os.kill, pid, signal.SIGCONT)
                with_suppressed(os.kill, pid, signal.SIGKILL)
            with_suppressed(os.kill, p.pid, signal.SIGCONT)
            p.kill()
        for p in self.workers:
            with_suppressed(p.wait, 10)
        self.tq.close()
        self.redis.close()


def with_suppressed(fn: Callable[..., object], *args: Any) -> None:
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        fn(*args)
