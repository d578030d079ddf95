"""The supervisor: N worker processes, kept alive, bounded in time and memory, and scaled.

One thread runs everything, waking on the children's pipes and exit sentinels (or every
``poll_interval``):

* **Start and restart.** Children are started with the ``spawn`` context (a fresh
  interpreter: no state forked from the supervisor); each builds the app from the same
  ``--app`` / configuration and runs the core worker (:mod:`.child`). A child that dies
  unexpectedly has its tasks handed back at once (``broker.release`` of the leases it
  reported, fenced, so a task settled or re-leased meanwhile is left alone): those it had
  started count as a delivery without an outcome, with the exit code or signal as the
  reason (the poison rule: run alone from then on, dead-lettered at max_deliveries), the
  recently ended ones go back gracefully. It is restarted after ``restart_backoff``
  seconds; a child that died with no task running (it cannot start: bad app, no Redis)
  doubles that per crash in a row up to ``restart_backoff_max`` — no restart storm; a
  child that lived longer than the cap resets the streak.
* **Hard timeouts.** A task running longer than its ``hard_timeout`` has its process
  killed (SIGKILL: a task stuck in C cannot be interrupted any other way). The task is
  settled as timed out with its fence (:class:`~taskq_core.errors.HardTimeout`, retried
  or failed by the task's retry policy, through the worker's own
  :func:`~taskq_core.worker.failure_outcome`); the other tasks of that process are
  handed back at once, and a fresh process is started without delay.
* **Recycling.** A process that ended ``max_tasks_per_process`` tasks, or whose resident
  memory passed ``max_memory_mb``, gets a replacement; once the replacement is ready, the
  old process is told to retire: it fetches nothing more, finishes what it runs, exits.
* **Autoscaling.** Every ``interval`` seconds the supervisor measures the signals
  (:mod:`.signals`), asks the pure decision rule (:mod:`.decision`), applies it — start
  processes, or retire the least busy ones (retiring never kills a running task) — and
  publishes inputs, decision and reason (:mod:`.publish`).
* **Shutdown.** SIGTERM or SIGINT: every child gets SIGTERM (stop fetching, the worker's
  grace period for running tasks, then hand the rest back). A second signal, or the grace
  period running out, sends SIGTERM again (hand back at once); a child still alive 10 s
  later is killed and its leases released.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson
import psutil

from ..brokers.base import Lease
from ..capabilities import check_capabilities
from ..redact import redact_text
from ..validation import check_queue_name
from .child import BROKER_REFUSED, child_main
from .children import (
    LEASED_KEPT,
    Child,
    Pending,
    Run,
    death_reason,
    recycle_reason,
    release_leases,
    settle_aborted,
    settle_timed_out,
)
from .decision import Autoscaler, Decision, ScalerConfig
from .publish import drop_autoscaler, make_record, write_autoscaler
from .signals import OwnFigures, SignalCollector

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..settings import SupervisorSettings

log = logging.getLogger("taskq.supervisor")

#: seconds a child gets to exit after the final SIGTERM before it is killed
KILL_AFTER = 10.0


class Supervisor:
    """Runs and supervises worker processes; see the module docstring.

    ``app`` is the supervisor's own TaskQueue (settings, registry for retry policies,
    broker); the children build theirs from ``app_spec`` (or the configuration when it is
    None). ``processes`` fixes the count; None lets the autoscaler choose between
    ``min_processes`` and ``max_processes``. ``handle_signals=False`` when run from a thread
    (tests, embedding): call :meth:`stop` instead.
    """

    def __init__(
        self,
        app: TaskQueue,
        *,
        app_spec: str | None,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        capabilities: list[str] | None = None,
        processes: int | None = None,
        min_processes: int | None = None,
        max_processes: int | None = None,
        log_level: str = "INFO",
        log_format: str = "console",
        handle_signals: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = app.settings.supervisor
        self.app = app
        self.settings = s
        self.app_spec = app_spec
        self.queues = [check_queue_name(q) for q in (queues or app.settings.worker_queues())]
        self.concurrency = concurrency or app.settings.worker.concurrency
        #: what its workers declare (taskq_core/capabilities.py); None: the settings'
        self.capabilities = capabilities
        self.fixed = processes
        low, high = resolve_bounds(s, processes, min_processes, max_processes)
        self.config = ScalerConfig.from_settings(s, min_processes=low, max_processes=high)
        self.scaler = Autoscaler(self.config)
        self.log_level = log_level
        self.log_format = log_format
        self.handle_signals = handle_signals
        self.clock = clock
        self.host = socket.gethostname()
        self.id = f"{self.host}:{os.getpid()}:{os.urandom(3).hex()}"
        self.collector = SignalCollector(
            app,
            queues=self.queues,
            settings=s,
            supervisor_id=self.id,
            clock=clock,
            capabilities=check_capabilities(
                app.settings.worker.capabilities if capabilities is None else capabilities
            ),
        )
        # what happened, in order (spawn, ready, retire, exit, hard_timeout, decision...):
        # read through history() by tests, benchmarks and debugging tools
        self._events: deque[dict[str, Any]] = deque(maxlen=10_000)
        self._events_lock = threading.Lock()
        self.last_decision: Decision | None = None
        self._ctx = multiprocessing.get_context("spawn")
        self._children: list[Child] = []
        self._pending: list[Pending] = []
        self._n = 0
        self._crash_streak = 0
        self._stop_requests = 0
        #: what :meth:`run` returns: 0, or 4 once a child was refused by the broker
        self.exit_code = 0
        self._stop_lock = threading.Lock()
        self._shutdown_phase = 0
        self._shutdown_deadline = 0.0
        self._last_reading: float | None = None

    def __repr__(self) -> str:
        return f"Supervisor({self.id}, processes={len(self._children)})"

    # -- public

    def stop(self, *, now: bool = False) -> None:
        """Begin a graceful shutdown (as SIGTERM); again, or ``now=True``, hands the running
        tasks back at once. Safe from any thread and from a signal handler."""
        with self._stop_lock:
            self._stop_requests += 2 if now else 1

    def history(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The supervisor's events so far (the last 10 000), oldest first, optionally of one
        kind: ``spawn`` (with ``why``), ``ready``, ``retire`` (``reason``, ``running``),
        ``exit`` (``code``, ``released``), ``crash`` (``restart_in``), ``hard_timeout``
        (``task``, ``outcome``), ``recycle``, ``decision``... Safe from any thread."""
        with self._events_lock:
            events = list(self._events)
        return events if kind is None else [e for e in events if e["event"] == kind]

    @property
    def processes(self) -> int:
        """Active processes (starting ones and pending restarts included)."""
        return sum(c.active for c in self._children) + len(self._pending)

    def children(self) -> list[dict[str, Any]]:
        """A snapshot of the children: pid, ready, running tasks, tasks done, state."""
        return [
            {
                "n": c.n,
                "pid": c.pid,
                "ready": c.ready_at is not None,
                "running": len(c.running),
                "done": c.done,
                "retiring": c.retiring,
                "active": c.active,
            }
            for c in self._children
        ]

    def run(self) -> int:
        """Run until stopped; returns the exit code: 0, or 4 when a worker process was
        refused by the broker (a wrong password is not fixed by restarting)."""
        previous = self._install_signals()
        self.app.load_imports()  # the registry gives timed-out tasks their retry policy
        initial = self.fixed if self.fixed is not None else self.config.min_processes
        log.info(
            "supervisor %s: %s, queues=%s, concurrency=%d per process",
            self.id,
            f"{self.fixed} process(es)"
            if self.fixed is not None
            else f"autoscaling {self.config.min_processes}-{self.config.max_processes} processes",
            self.queues,
            self.concurrency,
        )
        try:
            for _ in range(initial):
                self._spawn("start")
            next_reading = self.clock()
            while True:
                self._wait()
                now = self.clock()
                self._read_all()
                self._reap(now)
                if self._stop_requests:
                    if self._shutdown(now):
                        break
                    self._enforce_hard_timeouts(now)
                    continue
                self._check_starts(now)
                self._enforce_hard_timeouts(now)
                self._check_recycling(now)
                self._restart_due(now)
                if now >= next_reading:
                    self._reading(now)
                    next_reading = now + self.settings.interval
        finally:
            self._kill_all()
            with contextlib.suppress(Exception):
                drop_autoscaler(self.app, self.id)
            self._restore_signals(previous)
            log.info("supervisor %s stopped", self.id)
        return self.exit_code

    # -- signals

    def _install_signals(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return previous
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stop()

    # -- children

    def _spawn(self, why: str, replaces: Child | None = None) -> Child:
        self._n += 1
        parent, child = self._ctx.Pipe(duplex=True)
        spec = {
            "app_spec": self.app_spec,
            "queues": self.queues,
            "concurrency": self.concurrency,
            "capabilities": self.capabilities,
            "log_level": self.log_level,
            "log_format": self.log_format,
            "supervisor": self.id,
            "retire_timeout": self.settings.retire_timeout,
        }
        # the spec goes as JSON text: nothing but plain data crosses to the child
        process = self._ctx.Process(
            target=child_main,
            args=(child, orjson.dumps(spec).decode()),
            name=f"taskq-worker-{self._n}",
        )
        process.start()
        child.close()
        now = self.clock()
        c = Child(self._n, process, process.pid or 0, parent, now, replaces=replaces)
        c.busy_since = now
        with contextlib.suppress(psutil.Error):
            c.proc = psutil.Process(c.pid)
        self._children.append(c)
        self._event("spawn", c, why=why)
        log.info("supervisor: started worker process %d (%s)", c.pid, why)
        return c

    def _wait(self) -> None:
        objects: list[Any] = [c.conn for c in self._children if c.conn is not None]
        objects += [c.process.sentinel for c in self._children]
        timeout = self.settings.poll_interval
        if objects:
            wait(objects, timeout)
        else:
            time.sleep(timeout)

    def _read_all(self) -> None:
        for c in list(self._children):
            self._read(c)

    def _read(self, c: Child) -> None:
        while c.conn is not None:
            try:
                if not c.conn.poll():
                    return
                data = c.conn.recv_bytes()
            except (EOFError, OSError):
                c.conn.close()
                c.conn = None
                return
            try:
                msg = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            try:
                self._handle(c, msg)
            except (KeyError, TypeError, ValueError, AttributeError):
                # our own child sent it, but a bad message must not stop the supervisor
                log.warning("supervisor: unreadable message from worker process %d", c.pid)

    def _handle(self, c: Child, msg: dict[str, Any]) -> None:
        kind = msg.get("t")
        now = self.clock()
        if kind in ("start", "end"):
            c.account(now)
        if kind == "start":
            r = Run(
                str(msg["q"]),
                str(msg["id"]),
                int(msg["f"]),
                str(msg.get("task") or ""),
                float(msg["hard"]) if msg.get("hard") is not None else None,
                now,
                int(time.time() * 1000),
            )
            c.running[(r.queue, r.id)] = r
            c.leased.pop((r.queue, r.id), None)
        elif kind == "leased":
            for q, task_id, fence in msg["l"]:
                c.leased[(str(q), str(task_id))] = Lease(str(q), str(task_id), int(fence))
            # a lease that never started nor ended (lapsed before a slot came free, handed
            # back by the worker itself) is forgotten with age: a process holds far fewer
            while len(c.leased) > LEASED_KEPT:
                del c.leased[next(iter(c.leased))]
        elif kind == "abort":
            run = c.running.get((str(msg["q"]), str(msg["id"])))
            if run is not None and run.abort_by is None:
                run.abort_by = now + float(msg["grace"])
        elif kind == "end":
            key = (str(msg["q"]), str(msg["id"]))
            ended = c.running.pop(key, None)
            if ended is not None:
                c.ended.append(ended)
            c.leased.pop(key, None)
            c.done = int(msg.get("done") or c.done)
        elif kind == "ready":
            c.ready_at = now
            c.worker_id = str(msg.get("worker") or "")
            self._event("ready", c, after=round(now - c.started, 3))
            old = c.replaces
            if (
                old is not None
                and old in self._children
                and old.retiring is None
                and old.killed is None
            ):
                self._retire(old, old.recycle)
            c.replaces = None
        elif kind == "stopping":
            self._event("stopping", c)

    def _send(self, c: Child, message: dict[str, Any]) -> bool:
        if c.conn is None:
            return False
        try:
            c.conn.send_bytes(orjson.dumps(message))
        except OSError:
            return False
        return True

    def _signal(self, c: Child, sig: signal.Signals) -> None:
        if c.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(c.pid, sig)

    def _retire(self, c: Child, reason: str) -> None:
        """Tell ``c`` to stop fetching and exit once its running tasks are done."""
        c.retiring = reason
        if not self._send(c, {"cmd": "retire"}):
            self._signal(c, signal.SIGTERM)  # the pipe is gone: SIGTERM does the same
        self._event("retire", c, reason=reason, running=len(c.running))
        log.info(
            "supervisor: retiring worker process %d (%s; %d task(s) running)",
            c.pid,
            reason,
            len(c.running),
        )

    def _reap(self, now: float) -> None:
        for c in list(self._children):
            if c.process.exitcode is None:
                continue
            self._read(c)  # its last messages (task ends) before its leases are judged
            code = c.process.exitcode
            # died unexpectedly (not told to stop, not killed by us): the tasks it had
            # started count as a delivery (a task that kills its process is bounded by the
            # poison rule); a process that ended as told hands back gracefully
            crash = death_reason(c.pid, code) if code != 0 and c.killed is None else None
            ran = bool(c.running)
            released = release_leases(self.app.broker, c, crash)
            self._children.remove(c)
            if c.conn is not None:
                c.conn.close()
            c.process.join(0)
            c.process.close()
            self._event("exit", c, code=code, released=released, reason=c.retiring or c.killed)
            if c.killed in ("hard timeout", "abort") or self._stop_requests:
                continue
            if code == BROKER_REFUSED:
                # Redis refused the credentials: a restart would be refused too
                log.error(
                    "supervisor: worker process %d was refused by the broker (exit code %d); "
                    "stopping",
                    c.pid,
                    code,
                )
                self.exit_code = BROKER_REFUSED
                self.stop()
                continue
            if c.retiring is not None or c.replacing:
                if code != 0:
                    log.warning(
                        "supervisor: retiring worker process %d exited with %s", c.pid, code
                    )
                if c.replacing:
                    self._forget_replacement_of(c)
                continue
            self._crashed(c, code, now, ran and crash is not None)

    def _forget_replacement_of(self, c: Child) -> None:
        for other in self._children:
            if other.replaces is c:
                other.replaces = None
        for p in self._pending:
            if p.replaces is c:
                p.replaces = None

    def _crashed(self, c: Child, code: int | None, now: float, by_task: bool) -> None:
        """Restart ``c`` after a back-off. ``by_task``: it died running tasks, now counted
        by the poison rule, which bounds how often one task can kill a process: the
        restart waits only ``restart_backoff`` and the streak does not grow (doubling for
        a poison task's every crash kept a 2-process pool down for a minute). A process
        that dies on its own (bad app, no Redis) backs off doubling."""
        s = self.settings
        if now - c.started > s.restart_backoff_max:
            self._crash_streak = 0
        if by_task:
            delay = min(s.restart_backoff_max, s.restart_backoff)
        else:
            self._crash_streak += 1
            delay = min(s.restart_backoff_max, s.restart_backoff * 2 ** (self._crash_streak - 1))
        self._pending.append(Pending(now + delay, c.replaces))
        log.warning(
            "supervisor: worker process %d %s (exit code %s); restarting in %.1fs",
            c.pid,
            "failed to start" if c.killed else "died",
            code,
            delay,
        )
        self._event("crash", c, code=code, restart_in=round(delay, 3), by_task=by_task)

    def _release(self, c: Child) -> int:
        return release_leases(self.app.broker, c)

    def _restart_due(self, now: float) -> None:
        due = [p for p in self._pending if p.due <= now]
        for p in due:
            self._pending.remove(p)
            replaces = p.replaces
            if replaces is not None and (replaces not in self._children or replaces.retiring):
                replaces = None
            self._spawn("restart" if replaces is None else "replacement", replaces)

    def _check_starts(self, now: float) -> None:
        for c in self._children:
            if (
                c.ready_at is None
                and c.killed is None
                and now - c.started > (self.settings.start_timeout)
            ):
                c.killed = "start timeout"
                self._signal(c, signal.SIGKILL)
                self._event("start_timeout", c)

    # -- hard timeouts

    def _enforce_hard_timeouts(self, now: float) -> None:
        for c in list(self._children):
            if c.killed is not None:
                continue
            over = [
                r for r in c.running.values() if r.hard is not None and now - r.started > r.hard
            ]
            # asked to abort and still running after worker.abort_grace (aborting.py)
            ignored = [r for r in c.running.values() if r.abort_by is not None and now > r.abort_by]
            if over or ignored:
                self._kill_for_timeout(c, over, ignored)

    def _kill_for_timeout(self, c: Child, over: list[Run], ignored: Sequence[Run] = ()) -> None:
        c.killed = "hard timeout" if over else "abort"
        self._signal(c, signal.SIGKILL)
        c.process.join(5)
        self._read(c)  # tasks that ended just before the kill
        now_ms = int(time.time() * 1000)
        for r in ignored:
            if c.running.pop((r.queue, r.id), None) is None:
                continue  # it ended just before the kill
            kind = settle_aborted(self.app, c, r, now_ms)
            self._event("abort_kill", c, task=r.task, id=r.id, outcome=kind)
            log.warning(
                "supervisor: task %s (%s) did not stop when asked to abort: killed worker "
                "process %d; the task is %s",
                r.id,
                r.task,
                c.pid,
                kind,
            )
        for r in over:
            if r in ignored:
                continue  # settled as aborted above
            c.running.pop((r.queue, r.id), None)
            kind = settle_timed_out(self.app, c, r, now_ms)
            self._event("hard_timeout", c, task=r.task, id=r.id, outcome=kind)
            log.warning(
                "supervisor: task %s (%s) ran past its hard time limit of %gs: killed worker "
                "process %d; the task is %s",
                r.id,
                r.task,
                r.hard or 0,
                c.pid,
                kind,
            )
        released = self._release(c)
        self._event("siblings_released", c, released=released)
        if self._stop_requests:
            return
        if c.retiring is None and not c.replacing:
            # a fresh process takes its place at once: this was no crash of the code
            self._spawn("hard timeout", c.replaces)
            c.replaces = None

    # -- recycling

    def _check_recycling(self, now: float) -> None:
        s = self.settings
        if s.max_tasks_per_process is None and s.max_memory_mb is None:
            return
        for c in list(self._children):
            if not c.active or c.ready_at is None:
                continue
            if s.max_memory_mb is not None and c.proc is not None:
                with contextlib.suppress(psutil.Error):
                    c.rss = int(c.proc.memory_info().rss)
            why = recycle_reason(c, s)
            if why:
                c.replacing = True
                c.recycle = why
                self._event("recycle", c, reason=why)
                log.info("supervisor: recycling worker process %d (%s)", c.pid, why)
                self._spawn("replacement", replaces=c)

    # -- autoscaling

    def _own(self, now: float) -> OwnFigures:
        active = [c for c in self._children if c.active]
        elapsed = now - self._last_reading if self._last_reading is not None else 0.0
        busy = 0.0
        for c in self._children:
            c.account(now)
            if c.active:
                busy += c.busy_seconds / elapsed if elapsed > 0 else len(c.running)
            c.busy_seconds = 0.0
        self._last_reading = now
        return OwnFigures(
            processes=self.processes,
            concurrency=self.concurrency,
            busy=busy,
            pids=[c.pid for c in active if c.ready_at is not None],
        )

    def _reading(self, now: float) -> None:
        try:
            inputs = self.collector.collect(self._own(now))
        except Exception as exc:
            log.warning("supervisor: could not read the signals: %s", redact_text(str(exc)))
            return
        if self.fixed is not None:
            decision = Decision(
                "hold",
                self.fixed,
                f"fixed at {self.fixed} process(es) (--processes {self.fixed})",
                min=self.fixed,
                max=self.fixed,
                signals={"backlog": inputs.backlog, "busy": inputs.busy, "slots": inputs.slots},
            )
        else:
            decision = self.scaler.decide(inputs, now)
        self.last_decision = decision
        before = self.processes
        self._event(
            "decision", None, action=decision.action, target=decision.target, processes=before
        )
        if decision.action == "up":
            for _ in range(decision.target - before):
                self._spawn("scale up")
        elif decision.action == "down":
            self._scale_down(before - decision.target)
        if decision.action != "hold":
            log.info(
                "supervisor: %s to %d process(es): %s",
                "scaling up" if decision.action == "up" else "scaling down",
                decision.target,
                decision.reason,
            )
        record = make_record(
            supervisor=self.id,
            host=self.host,
            at_ms=int(time.time() * 1000),
            processes=before,
            low=decision.min,
            high=decision.max,
            inputs={**decision.signals, "votes": decision.votes, "retiring": self._retiring()},
            decision=decision.action,
            target=decision.target,
            reason=decision.reason,
        )
        try:
            write_autoscaler(self.app, record)
        except Exception as exc:
            log.warning("supervisor: could not publish the decision: %s", redact_text(str(exc)))

    def _retiring(self) -> int:
        return sum(c.retiring is not None for c in self._children)

    def _scale_down(self, n: int) -> None:
        # pending restarts go first: nothing runs there
        while n > 0 and self._pending:
            self._pending.pop()
            n -= 1
        # then the least busy processes (an idle one exits at once), the newest first
        candidates = sorted(
            (c for c in self._children if c.active),
            key=lambda c: (len(c.running), -c.n),
        )
        for c in candidates[:n]:
            self._retire(c, "scale down")

    # -- shutdown

    def _shutdown(self, now: float) -> bool:
        """One step of the shutdown; True once every child is gone."""
        if self._shutdown_phase == 0:
            self._shutdown_phase = 1
            self._pending.clear()
            grace = self.app.settings.worker.grace_period
            self._shutdown_deadline = now + grace + 2.0
            log.info(
                "supervisor: stopping %d worker process(es) (grace %.1fs)",
                len(self._children),
                grace,
            )
            for c in self._children:
                self._signal(c, signal.SIGTERM)
        if self._shutdown_phase == 1 and (self._stop_requests > 1 or now > self._shutdown_deadline):
            self._shutdown_phase = 2
            self._shutdown_deadline = now + KILL_AFTER
            for c in self._children:
                self._signal(c, signal.SIGTERM)  # the second one: hand back at once
        if self._shutdown_phase == 2 and now > self._shutdown_deadline:
            self._kill_all()
        return not self._children

    def _kill_all(self) -> None:
        for c in list(self._children):
            self._signal(c, signal.SIGKILL)
            c.process.join(5)
            self._read(c)
            released = self._release(c)
            self._event("killed", c, released=released)
            if c.conn is not None:
                c.conn.close()
            self._children.remove(c)

    def _event(self, kind: str, c: Child | None, **data: Any) -> None:
        event: dict[str, Any] = {"event": kind, "at": self.clock(), "wall": time.time()}
        if c is not None:
            event["pid"] = c.pid
            event["n"] = c.n
        event.update(data)
        with self._events_lock:
            self._events.append(event)


def resolve_bounds(
    s: SupervisorSettings,
    processes: int | None,
    min_processes: int | None,
    max_processes: int | None,
) -> tuple[int, int]:
    """``(min, max)``: a fixed count, or the flags, else the settings (max: the CPU count)."""
    from ..errors import InvalidOption

    if processes is not None:
        if processes < 1:
            raise InvalidOption(f"processes must be at least 1, got {processes}")
        return processes, processes
    low = min_processes if min_processes is not None else s.min_processes
    high = max_processes if max_processes is not None else s.max_processes
    if high is None:
        high = max(low, os.cpu_count() or 1)
    if low < 1:
        raise InvalidOption(f"min_processes must be at least 1, got {low}")
    if high < low:
        raise InvalidOption(f"max_processes ({high}) is below min_processes ({low})")
    return low, high
