"""The autoscaler's inputs, measured cluster-wide.

One reading costs a few round trips, whatever the number of workers:

* ``queue_info`` of the served queues: ready tasks per queue (each counted with the
  queue's weight from ``supervisor.queue_weights``), the enqueue time of the oldest ready
  task, and the stats hash (contract 5) — the ``ok``/``retry``/``failed``/``dead``
  counters and the run-time histograms the metrics middleware adds
  (``runtime_bucket|<task>|<le>``, ``runtime_sum_us|<task>``). Their deltas over
  ``error_window`` give the error rate and each queue's mean run time (the cumulative mean
  until the window holds an execution).
* the worker heartbeats (contract 1, :func:`~taskq_core.observability.heartbeat.read_workers`):
  busy slots and slots of every other worker serving these queues. This supervisor's own
  processes are counted from what they report through their pipes, which is exact and has
  no heartbeat delay.
* the other supervisors' published records (contract 2), for the share of
  ``cluster_max_processes``.
* this machine: resident memory of its own processes (psutil) and the memory available.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from ..capabilities import served_queues, split_queue
from ..observability.heartbeat import read_workers
from ..observability.metrics import parse_stats
from .decision import Inputs, QueueLoad
from .publish import read_autoscaler

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..settings import SupervisorSettings

MB = 1024 * 1024
_OUTCOMES = ("ok", "retry", "failed", "dead")


@dataclass(frozen=True, slots=True)
class OwnFigures:
    """What the supervisor knows of its own processes."""

    processes: int  # active (not retiring), starting and pending restarts included
    concurrency: int
    busy: float  # busy slots of its active processes, averaged since the last reading
    pids: Sequence[int] = ()  # its active processes, for their memory


@dataclass(slots=True)
class _Totals:
    """Cumulative counters of one queue at one reading."""

    executions: int = 0
    errors: int = 0
    runs: int = 0  # executions with a measured run time
    run_seconds: float = 0.0


class SignalCollector:
    """Reads the inputs of one autoscaler reading; keeps the counter history of the window.

    ``clock`` (monotonic seconds) and ``wall_ms`` (epoch milliseconds) are injectable for
    tests.
    """

    def __init__(
        self,
        app: TaskQueue,
        *,
        queues: list[str],
        settings: SupervisorSettings,
        supervisor_id: str,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] | None = None,
        capabilities: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.queues = queues
        #: what its workers have: the routed queues they serve count as load too
        #: (taskq_core/capabilities.py), found in the broker's queue set at each reading
        self.capabilities = capabilities
        self.settings = settings
        self.supervisor_id = supervisor_id
        self.clock = clock
        self.wall_ms = wall_ms or (lambda: int(time.time() * 1000))
        self._history: deque[tuple[float, dict[str, _Totals]]] = deque()
        self._procs: dict[int, psutil.Process] = {}

    def collect(self, own: OwnFigures) -> Inputs:
        """Measure everything now."""
        now, now_ms = self.clock(), self.wall_ms()
        s = self.settings
        queues = self.served()
        infos = self.app.broker.queue_info(queues)
        totals = {info.name: _totals(info.stats) for info in infos}
        baseline = self._window(now, totals)
        loads: list[QueueLoad] = []
        executions = errors = 0
        oldest = 0.0
        for info in infos:
            cur = totals[info.name]
            old = baseline.get(info.name, _Totals())
            d_exec = max(0, cur.executions - old.executions)
            d_err = max(0, min(d_exec, cur.errors - old.errors))
            executions += d_exec
            errors += d_err
            d_runs = cur.runs - old.runs
            if d_runs > 0:
                mean: float | None = max(0.0, cur.run_seconds - old.run_seconds) / d_runs
            elif cur.runs > 0:
                mean = cur.run_seconds / cur.runs
            else:
                mean = None
            # a routed queue (default@gpu) weighs as its base queue unless weighted itself
            weight = s.queue_weights.get(info.name) or s.queue_weights.get(
                split_queue(info.name)[0], 1.0
            )
            loads.append(QueueLoad(info.name, info.ready, weight, mean))
            if info.ready > 0 and info.oldest_enqueued_ms is not None:
                oldest = max(oldest, (now_ms - info.oldest_enqueued_ms) / 1000)
        peers_busy, peers_slots = self._peer_workers(queues)
        supervisors, rank = self._supervisors(now_ms)
        return Inputs(
            processes=own.processes,
            concurrency=own.concurrency,
            queues=tuple(loads),
            oldest_wait=oldest,
            busy=own.busy + peers_busy,
            slots=own.processes * own.concurrency + peers_slots,
            executions=executions,
            errors=errors,
            rss_mb=self._mean_rss_mb(own.pids),
            available_mb=psutil.virtual_memory().available / MB,
            supervisors=supervisors,
            rank=rank,
        )

    def _window(self, now: float, totals: dict[str, _Totals]) -> dict[str, _Totals]:
        """Record this reading; the oldest reading still inside the window is the baseline."""
        self._history.append((now, totals))
        horizon = now - self.settings.error_window
        while len(self._history) > 1 and self._history[1][0] <= horizon:
            self._history.popleft()
        return self._history[0][1]

    def served(self) -> list[str]:
        """The queues its workers fetch from: its own, with the routed queues their
        capabilities let them serve."""
        if not self.capabilities:
            return self.queues
        return served_queues(self.queues, self.capabilities, self.app.broker.known_queues())

    def _peer_workers(self, queues: list[str]) -> tuple[int, int]:
        """Busy slots and slots of the live workers of other supervisors (or of none) that
        serve one of our queues; our own are counted exactly from their pipes."""
        mine = set(queues)
        busy = slots = 0
        for w in read_workers(self.app):
            if w.get("supervisor") == self.supervisor_id:
                continue
            theirs = w.get("queues")
            if not isinstance(theirs, list) or not mine.intersection(map(str, theirs)):
                continue
            busy += _int(w.get("busy"))
            slots += _int(w.get("concurrency"))
        return busy, slots

    def _supervisors(self, now_ms: int) -> tuple[int, int]:
        """Live supervisors (ourselves included) and our rank among their sorted ids. A
        supervisor is live while its record is younger than 5 readings (at least 10 s)."""
        window = int(max(10.0, 5 * self.settings.interval) * 1000)
        ids = {self.supervisor_id}
        for record in read_autoscaler(self.app, max_age_ms=window, now_ms=now_ms):
            sid = record.get("supervisor")
            if isinstance(sid, str):
                ids.add(sid)
        ordered = sorted(ids)
        return len(ordered), ordered.index(self.supervisor_id)

    def _mean_rss_mb(self, pids: Sequence[int]) -> float:
        sizes: list[int] = []
        for pid in pids:
            proc = self._procs.get(pid)
            try:
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                sizes.append(int(proc.memory_info().rss))
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                self._procs.pop(pid, None)
        for gone in set(self._procs) - set(pids):
            del self._procs[gone]
        return sum(sizes) / len(sizes) / MB if sizes else 0.0


def _totals(stats: dict[str, int]) -> _Totals:
    parsed = parse_stats(stats)
    c = parsed.counters
    executions = sum(c.get(k, 0) for k in _OUTCOMES)
    runtime = parsed.histogram("runtime")
    return _Totals(executions, executions - c.get("ok", 0), runtime.count, runtime.sum)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
