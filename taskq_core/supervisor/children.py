"""The supervisor's view of its worker processes, and what happens to the tasks of one that
dies: handed back at once, or — for the one that ran past its hard time limit — settled as
timed out by its retry policy."""

from __future__ import annotations

import logging
import signal
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

import orjson
import psutil

from ..brokers.base import Lease, Outcome, ReleaseMode, StepOutcome
from ..clock import script_ms
from ..errors import HardTimeout
from ..message import BadMessage, decode
from ..redact import redact_text
from ..retry import RetryPolicy
from ..worker import failure_outcome
from ..workflow.steps import step_outcome
from .signals import MB

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..brokers.base import Broker
    from ..settings import SupervisorSettings

log = logging.getLogger("taskq.supervisor")


@dataclass(slots=True)
class Run:
    """A task a child reported running."""

    queue: str
    id: str
    fence: int
    task: str
    hard: float | None
    started: float  # supervisor's monotonic clock
    started_ms: int
    #: asked to abort: killed if still running at this time (supervisor's monotonic clock)
    abort_by: float | None = None

    def lease(self) -> Lease:
        return Lease(self.queue, self.id, self.fence)


#: leased-but-not-started tasks a child's record keeps (the oldest forgotten first): a
#: process leases at most its slots times a few ahead, so more are stale entries
LEASED_KEPT = 10_000


@dataclass(eq=False, slots=True)
class Child:
    """One worker process, as the supervisor knows it from its pipe."""

    n: int
    process: BaseProcess
    pid: int  # kept: the process object is closed once reaped
    conn: Connection | None
    started: float
    ready_at: float | None = None
    worker_id: str = ""
    running: dict[tuple[str, str], Run] = field(default_factory=dict)
    # leased by a fetch and not started yet (waiting for a slot): handed back, uncounted
    leased: dict[tuple[str, str], Lease] = field(default_factory=dict)
    # recently ended tasks: their outcome may not be settled yet when the process dies, so
    # they are released too (a no-op for those settled: release is fenced)
    ended: deque[Run] = field(default_factory=lambda: deque(maxlen=256))
    done: int = 0
    retiring: str | None = None  # why it was told to stop fetching
    replaces: Child | None = None  # recycling: the child this one takes over from
    replacing: bool = False  # a replacement for this child is on its way
    recycle: str = ""  # why it is being replaced
    killed: str | None = None  # why the supervisor killed it (its death is handled)
    rss: int = 0
    proc: psutil.Process | None = None
    # slot-seconds spent running tasks since the last reading: utilisation is the mean over
    # the reading's interval, not a sample that a task ending at that instant would skew
    busy_seconds: float = 0.0
    busy_since: float = 0.0

    def account(self, now: float) -> None:
        """Add the slot-seconds since the last change of the running set."""
        self.busy_seconds += len(self.running) * max(0.0, now - self.busy_since)
        self.busy_since = now

    @property
    def active(self) -> bool:
        """Counts towards the process count: not retiring, not killed, not being replaced."""
        return self.retiring is None and self.killed is None and not self.replacing


@dataclass(slots=True)
class Pending:
    """A process to start at ``due`` (a restart after a crash, with backoff)."""

    due: float
    replaces: Child | None = None


def recycle_reason(c: Child, s: SupervisorSettings) -> str:
    """Why ``c`` should be recycled now, or an empty string."""
    if s.max_tasks_per_process is not None and c.done >= s.max_tasks_per_process:
        return f"recycle: {c.done} tasks (max_tasks_per_process={s.max_tasks_per_process})"
    if s.max_memory_mb is not None and c.rss > s.max_memory_mb * MB:
        return f"recycle: RSS {c.rss / MB:.0f} MB above max_memory_mb={s.max_memory_mb:g}"
    return ""


def death_reason(pid: int, code: int | None) -> str:
    """Why a worker process ended, as a dead-letter reason names it."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker process {pid} died: killed by signal {name} (exit code {code})"
    return f"worker process {pid} died: exit code {code}"


def release_leases(broker: Broker, c: Child, crash: str | None = None) -> int:
    """Hand the tasks of a dead child back to their queues at once; returns how many went
    back. Fenced: a no-op for those already settled or delivered again, so the recently
    ended ones are released too, in case their outcome had not been settled yet.

    ``crash``: the process died unexpectedly (the reason, from :func:`death_reason`): the
    tasks it had started count as a delivery without an outcome (the poison rule: each
    becomes a suspect, run alone from now on, or is dead-lettered at max_deliveries with
    this reason). The recently ended ones, and every task of a process that ended as told,
    go back gracefully (not counted), as do those it had leased but not started."""
    started = [r.lease() for r in c.running.values()]
    ended = [r.lease() for r in c.ended]
    # leased ahead and never started: they go back as a stopping worker's do (not counted:
    # they did not run), else they would wait for their leases to lapse
    ended.extend(c.leased.values())
    c.running.clear()
    c.ended.clear()
    c.leased.clear()
    calls: list[tuple[list[Lease], ReleaseMode, str]] = []
    if crash is not None and started:
        calls.append((started, "crashed", crash))
        started = []
    if started or ended:
        calls.append(([*started, *ended], "graceful", ""))
    n = 0
    for leases, mode, reason in calls:
        try:
            n += broker.release(leases, mode, reason)
        except Exception as exc:
            log.error(
                "supervisor: could not hand back the tasks of worker process %d, their leases "
                "will lapse: %s",
                c.pid,
                redact_text(str(exc)),
            )
    if n:
        log.info(
            "supervisor: handed back %d task(s) of worker process %d%s",
            n,
            c.pid,
            " (its running ones counted as a delivery)" if crash is not None else "",
        )
    return n


def settle_aborted(app: TaskQueue, c: Child, r: Run, now_ms: int) -> str:
    """Settle a task whose process was killed because it did not stop within
    ``worker.abort_grace`` of an abort request: aborted (final, not retried), with the
    lease's fence. Returns what became of it."""
    error = {
        "type": "TaskAborted",
        "message": f"task {r.task} was aborted on request; it did not stop within the "
        "grace period, so the supervisor killed its process",
        "traceback": "",
    }
    record = {
        "status": "aborted",
        "task": r.task,
        "worker": c.worker_id,
        "started_at": r.started_ms,
        "finished_at": now_ms,
        "reason": "aborted",
        "error": error,
    }
    outcome = Outcome(r.queue, r.id, r.fence, "aborted", r.task, orjson.dumps(record))
    try:
        outcome.step = _step(app, r, "aborted", record)
        stale = app.broker.settle([outcome], script_ms(app.clock))
    except Exception as exc:
        log.error(
            "supervisor: could not settle aborted task %s, its lease will lapse: %s",
            r.id,
            redact_text(str(exc)),
        )
        return "unsettled"
    return "already settled" if stale else "aborted"


def settle_timed_out(app: TaskQueue, c: Child, r: Run, now_ms: int) -> str:
    """Settle a task whose process was killed at its hard limit: a
    :class:`~taskq_core.errors.HardTimeout`, retried or failed by the task's retry policy
    (the worker's own :func:`~taskq_core.worker.failure_outcome`), with the lease's fence.
    Returns what became of it."""
    broker = app.broker
    try:
        state = broker.get(r.queue, r.id)
        if state is None or state.message is None:
            return "gone"
        signer = app.signer
        try:
            # verified before it is signed again: a message changed in Redis while its task
            # ran must not come out of the supervisor with a valid signature
            msg = decode(
                state.message,
                verify=signer.verify if signer is not None else None,
                task_id=r.id,
                queue=r.queue,
            )
        except BadMessage:
            broker.release([r.lease()])
            return "handed back (unreadable message)"
        task = app.registry.get(msg.task)
        policy = task.policy if task is not None else RetryPolicy(max_retries=0)
        exc = HardTimeout(
            f"task {msg.task} ran past its hard time limit of {r.hard or 0:g}s; the "
            "supervisor killed its process"
        )
        base = {"worker": c.worker_id, "started_at": r.started_ms}
        f = failure_outcome(
            policy,
            msg.task,
            msg,
            exc,
            now_ms=now_ms,
            base=base,
            signer=signer,
            compress_above=app.settings.compress_above,
            compact=app.settings.message_format == "compact",
        )
        outcome = Outcome(
            r.queue,
            r.id,
            r.fence,
            f.kind,
            msg.task,
            orjson.dumps(f.record),
            f.retry_delay_ms,
            f.retry_body,
            step_outcome(msg, f.kind, f.record, app.settings.max_payload_bytes),
        )
        # the retry's due time by the broker's clock, as the worker's retries
        stats = {r.queue: {f"timed_out|{msg.task}": 1}}
        stale = broker.settle([outcome], script_ms(app.clock), stats)
    except Exception as exc:
        log.error(
            "supervisor: could not settle timed-out task %s, its lease will lapse: %s",
            r.id,
            redact_text(str(exc)),
        )
        return "unsettled"
    if stale:
        return "already settled"
    return "retried" if f.kind == "retry" else "failed"


def _step(app: TaskQueue, r: Run, kind: str, record: dict[str, Any]) -> StepOutcome | None:
    """The workflow step outcome of a task the supervisor settles (its message read back;
    None for a task that is not a step)."""
    if not r.id.startswith("wf_"):
        return None
    state = app.broker.get(r.queue, r.id)
    if state is None or state.message is None:
        return None
    try:
        msg = decode(state.message, task_id=r.id, queue=r.queue)
    except BadMessage:
        return None
    return step_outcome(msg, kind, record, app.settings.max_payload_bytes)
