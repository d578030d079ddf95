"""The broker interface.

A broker stores queues and moves tasks through their states, each change in one atomic step.
Two implementations pass one contract suite (``tests/core/test_broker_contract.py``): Redis
(the product) and in-memory (users' tests and ``taskq demo``). The interface speaks in
ids, bytes and integer milliseconds, never in framework or Redis types, so that a SQL
backend could implement it too.

Every operation exists in a blocking form (web handlers, the CLI, the lease renewer
thread) and an ``async`` form (async producers and the worker loop); both are built from
one description of the operation, so their logic is never written twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from ..workflow.builder import StartRequest

T = TypeVar("T")
#: ``expired``: not started before its ``expires`` time, never run (flow control);
#: ``aborted``: stopped on request. Both are final without a dead-letter entry.
OutcomeKind = Literal["ok", "retry", "failed", "dead", "expired", "aborted"]
#: How a lease is handed back (``Broker.release``): ``graceful`` (SIGTERM within the grace
#: period, ``Worker.close()``, leased but never started) does not count as a delivery and
#: puts the task at the front of its queue; ``crashed`` (its worker process died) and
#: ``unexplained`` (an internal error around the task) count as a delivery without an
#: outcome (the poison rule, ``lua/_lib.lua``): the task becomes a suspect, or is
#: dead-lettered at ``max_deliveries`` with the reason given.
ReleaseMode = Literal["graceful", "crashed", "unexplained"]
#: the error type of the dead-letter record a counted hand-back leaves at the cap
RELEASE_ERROR_TYPES: dict[str, str] = {"crashed": "WorkerCrashed", "unexplained": "InternalError"}

#: the snapshot series a broker keeps (Broker.snapshot_add)
SNAPSHOT_SERIES = ("snapshots", "history")


@dataclass(slots=True)
class EnqueueItem:
    """One task to add: due now, at ``due_ms`` (an absolute time, by the producer's clock),
    or ``delay_ms`` after the broker's now (by the clock that decides leases: see
    docs/architecture.md, "Time"). The task id is the enqueue's identity: an item whose id
    the broker knows already is not added again (a re-sent enqueue)."""

    queue: str
    id: str
    task: str
    body: bytes
    due_ms: int = 0
    idempotency_key: str | None = None
    delay_ms: int = 0
    #: flow control (taskq_core/flow): the gate (JSON, empty: none) enforced at fetch, and
    #: the unique key held while the task is queued or running (for ``unique_window_ms``
    #: at most, 0: until released)
    gate: bytes = b""
    unique_key: str | None = None
    unique_window_ms: int = 0


@dataclass(slots=True)
class FetchResult:
    deliveries: list[Delivery]
    next_due_ms: int | None  # earliest delayed task across the fetched queues
    #: the time the fetch ran at, by the clock of ``next_due_ms`` (the server's, unless the
    #: caller passed its own): how long to sleep is ``next_due_ms - now_ms``
    now_ms: int = field(default=0, compare=False)
    #: suspects still waiting in the fetched queues (tasks whose last delivery ended without
    #: an outcome): a worker told so stops leasing, lets what it holds finish, then fetches
    #: with ``alone=True`` (see docs/delivery.md, "Poison tasks and suspects")
    suspects: int = 0
    #: this batch is one suspect, leased alone: lease nothing else until it ends
    suspect: bool = False


@dataclass(slots=True)
class StepOutcome:
    """A workflow step's final outcome, settled with its task's (``settle.lua`` advances
    the workflow in the same atomic step): ``status`` succeeded | skipped | failed |
    cancelled, ``payload`` the result or the error (JSON)."""

    workflow: str
    step: int
    status: str
    payload: bytes
    queues: tuple[str, ...]


@dataclass(slots=True)
class Outcome:
    """How one delivery ended. ``record`` is the JSON stored as its result or error; a
    retry is due ``retry_delay_ms`` after the broker's now."""

    queue: str
    id: str
    fence: int
    kind: OutcomeKind
    task: str = ""
    record: bytes = b""
    retry_delay_ms: int = 0
    retry_body: bytes = b""
    step: StepOutcome | None = None


@dataclass(slots=True)
class Lease:
    queue: str
    id: str
    fence: int


@dataclass(slots=True)
class Delivery(Lease):
    """A leased task: ``fence`` must be presented to settle, renew or release it. It is
    its own lease (the worker keeps it as one, with no copy per task)."""

    body: bytes


@dataclass(slots=True)
class Renewal:
    """What a renewal learned: the leases lost (settled, or leased again elsewhere), and
    those still held whose task someone asked to abort."""

    lost: list[Lease] = field(default_factory=list)
    aborting: list[Lease] = field(default_factory=list)


@dataclass(slots=True)
class DeadTask:
    id: str
    queue: str
    dead_at_ms: int
    state: str  # failed | dead
    message: bytes | None
    error: bytes | None


@dataclass(slots=True)
class TaskState:
    """What the broker knows of one task: a live state and/or a final record."""

    id: str
    queue: str
    state: str | None  # queued | scheduled | running | failed | dead, None when settled
    record: bytes | None  # the result or error record, while its TTL lasts
    message: bytes | None
    deliveries: int = 0
    #: the latest progress a running task reported (JSON), and when an abort was asked
    progress: bytes | None = None
    abort_requested_ms: int | None = None


@dataclass(slots=True)
class QueueInfo:
    name: str
    ready: int
    delayed: int
    leased: int
    dead: int
    oldest_enqueued_ms: int | None
    stats: dict[str, int] = field(default_factory=dict)
    #: tasks waiting for a concurrency slot (flow control)
    waiting: int = 0


@dataclass(slots=True)
class MetricsWrite:
    """One write of an application's custom metrics (observability/custom.py): fields of
    the metrics hash to set (``put``) and to add to (``counts``: integers, ``amounts``:
    floats), and gauge series with the value last set and when (ms)."""

    put: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    amounts: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, tuple[int, float]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.put) + len(self.counts) + len(self.amounts) + len(self.gauges)


@dataclass(slots=True)
class Settings:
    """The knobs a broker operation needs (milliseconds)."""

    lease_ms: int = 15_000
    max_deliveries: int = 5
    result_ttl_ms: int = 86_400_000
    idempotency_ttl_ms: int = 86_400_000


class Broker(Protocol):
    """What the core needs from a broker; see the module docstring.

    ``now_ms`` arguments: 0 means "the broker's own clock" (Redis's ``TIME``; the in-memory
    broker's process clock), which every lease, delay and due time then shares whatever
    the clocks of the hosts calling it; any other value is the caller's time (a test's
    ``ManualClock``: see ``clock.script_ms``)."""

    url: str

    # -- producers
    def enqueue(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]: ...
    async def enqueue_async(self, items: Sequence[EnqueueItem], now_ms: int) -> list[str]: ...

    # -- workers
    def fetch(
        self,
        queues: Sequence[str],
        want: int,
        now_ms: int,
        outcomes: Sequence[Outcome] = (),
        stats: dict[str, dict[str, int]] | None = None,
        *,
        alone: bool = False,
    ) -> tuple[FetchResult, list[Outcome]]: ...
    async def fetch_async(
        self,
        queues: Sequence[str],
        want: int,
        now_ms: int,
        outcomes: Sequence[Outcome] = (),
        stats: dict[str, dict[str, int]] | None = None,
        *,
        alone: bool = False,
    ) -> tuple[FetchResult, list[Outcome]]: ...
    async def wait_async(
        self, queues: Sequence[str], timeout: float, nudge: str | None = None
    ) -> bool: ...
    async def wait_fetch_async(
        self,
        queues: Sequence[str],
        timeout: float,
        want: int,
        now_ms: int,
        nudge: str | None = None,
        *,
        alone: bool = False,
    ) -> tuple[bool, FetchResult]: ...
    async def nudge_async(self, queues: Sequence[str], waiter: str) -> None: ...
    def settle(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]: ...
    async def settle_async(
        self,
        outcomes: Sequence[Outcome],
        now_ms: int,
        stats: dict[str, dict[str, int]] | None = None,
    ) -> list[Outcome]: ...
    def renew(
        self,
        leases: Sequence[Lease],
        now_ms: int,
        progress: Mapping[tuple[str, str], bytes] | None = None,
    ) -> Renewal:
        """Extend ``leases``; store ``progress`` ((queue, id) -> JSON) of those still held,
        in the same round trip; report the leases lost and those asked to abort."""
        ...

    def release(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int:
        """Hand leases back (fenced: a lease settled or re-leased meanwhile is left alone);
        returns how many were handed back. ``mode`` and ``reason``: see :data:`ReleaseMode`;
        ``now_ms`` (default: the broker's clock) dates a dead-letter entry."""
        ...

    async def release_async(
        self,
        leases: Sequence[Lease],
        mode: ReleaseMode = "graceful",
        reason: str = "",
        now_ms: int | None = None,
    ) -> int: ...

    # -- handles and administration
    def get(self, queue: str, task_id: str) -> TaskState | None: ...
    async def get_async(self, queue: str, task_id: str) -> TaskState | None: ...
    def cancel(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str:
        """Cancel a task that has not started ('cancelled'); with ``abort``, ask a running
        one to stop ('aborting'). Else the state that prevented it, or '' when unknown."""
        ...

    async def cancel_async(
        self, queue: str, task_id: str, record: bytes, *, abort: bool = False, now_ms: int = 0
    ) -> str: ...
    def dead_list(self, queue: str, offset: int, limit: int) -> list[DeadTask]: ...
    def dead_retry(self, queue: str, ids: Sequence[str]) -> int: ...
    def dead_purge(self, queue: str, ids: Sequence[str]) -> int: ...
    def queue_info(self, queues: Sequence[str]) -> list[QueueInfo]: ...
    # -- workflows (taskq_core/workflow; redis_workflows.py, memory_workflows.py)
    def wf_start(self, req: StartRequest, now_ms: int) -> bool: ...
    async def wf_start_async(self, req: StartRequest, now_ms: int) -> bool: ...
    def wf_get(self, workflow: str) -> dict[str, bytes] | None: ...
    async def wf_get_async(self, workflow: str) -> dict[str, bytes] | None: ...
    def wf_cancel(self, workflow: str, queues: Sequence[str], now_ms: int) -> str: ...
    async def wf_cancel_async(self, workflow: str, queues: Sequence[str], now_ms: int) -> str: ...
    def wf_retry(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int: ...
    async def wf_retry_async(
        self,
        workflow: str,
        queues: Sequence[str],
        steps: Sequence[tuple[int, int, bytes]],
        now_ms: int,
    ) -> int: ...
    def wf_drain(self, queues: Sequence[str], now_ms: int) -> int: ...
    async def wf_drain_async(self, queues: Sequence[str], now_ms: int) -> int: ...
    def wait_for(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], T | None]
    ) -> T | None: ...
    async def wait_for_async(
        self, queue: str, task_id: str, timeout: float, check: Callable[[], Awaitable[T | None]]
    ) -> T | None: ...
    def known_queues(self) -> list[str]: ...
    async def known_queues_async(self) -> list[str]: ...
    def incr_counters(self, group: str, counts: dict[str, int]) -> None: ...
    async def incr_counters_async(self, group: str, counts: dict[str, int]) -> None: ...
    def read_counters(self, group: str) -> dict[str, int]: ...
    def ping(self) -> float: ...

    # -- custom metrics (observability/custom.py)
    def metrics_write(self, batch: MetricsWrite) -> None:
        """Apply one write: set ``put``, add ``counts`` and ``amounts`` to the metrics hash,
        and keep each gauge value unless its series holds one set later."""
        ...

    async def metrics_write_async(self, batch: MetricsWrite) -> None: ...
    def metrics_read(self) -> tuple[dict[str, str], dict[str, tuple[int, float]]]:
        """The metrics hash, and each gauge series' latest ``(set at ms, value)``."""
        ...

    # -- observability: heartbeats, server facts, alert state, SLA windows (observability/)
    def probe(self, timeout: float) -> Broker:
        """A broker on the same data whose calls give up after ``timeout`` seconds without
        retrying, so health checks answer while the server is down or frozen."""
        ...

    def put_heartbeat(self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int) -> None:
        """Publish a worker's heartbeat record; it disappears ``ttl_ms`` after the last one."""
        ...

    async def put_heartbeat_async(
        self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int
    ) -> None: ...
    def drop_heartbeat(self, worker_id: str) -> None: ...
    def heartbeats(self) -> list[bytes]:
        """The records of live workers (expired ones are pruned)."""
        ...

    def server_info(self) -> dict[str, Any]:
        """Facts about the server (Redis ``INFO``); empty for the in-memory broker."""
        ...

    def server_config(self, names: Sequence[str]) -> dict[str, str]:
        """Server settings by name (Redis ``CONFIG GET``); empty when the server refuses
        CONFIG (renamed, or not allowed to this user) and for the in-memory broker."""
        ...

    def data_marker(self) -> tuple[bytes | None, str]:
        """The data marker (``{prefix}:marker``, see observability/durability.py) and the
        id of the server's current run (Redis ``run_id``: new at every restart)."""
        ...

    def put_data_marker(self, value: bytes) -> None:
        """Write the data marker."""
        ...

    def try_lock(self, name: str, ttl_ms: int) -> bool:
        """Take the named lock unless someone holds it; it lapses after ``ttl_ms``."""
        ...

    def alerts_read(self, history: int) -> tuple[dict[str, bytes], list[bytes]]:
        """Active alerts (key -> record) and up to ``history`` events, newest first."""
        ...

    def alerts_write(
        self, put: dict[str, bytes], drop: Sequence[str], events: Sequence[bytes], keep: int
    ) -> None:
        """Set and remove active alerts, and add events to the history (``keep`` newest)."""
        ...

    def snapshot_add(
        self, at_ms: int, data: bytes, keep_from_ms: int, series: str = "snapshots"
    ) -> None:
        """Store a snapshot of counters taken at ``at_ms``; drop those before ``keep_from_ms``.
        ``series`` (one of :data:`SNAPSHOT_SERIES`): the SLA window's snapshots, or the
        dashboard's per-minute history (observability/history.py)."""
        ...

    def snapshots(self, from_ms: int, series: str = "snapshots") -> list[tuple[int, bytes]]:
        """Snapshots of ``series`` taken at or after ``from_ms``, oldest first."""
        ...

    # -- the supervisors' autoscaler records (supervisor/publish.py)
    def put_autoscaler(self, supervisor_id: str, record: bytes) -> None:
        """Store the latest autoscaler record of one supervisor (replacing its previous one)."""
        ...

    def drop_autoscaler(self, supervisor_ids: Sequence[str]) -> None:
        """Remove the records of these supervisors (stopped or long gone)."""
        ...

    def autoscaler_records(self) -> dict[str, bytes]:
        """Every stored autoscaler record, by supervisor id."""
        ...

    def close(self) -> None: ...
    async def aclose(self) -> None: ...


def parse_stats(raw: dict[Any, Any]) -> dict[str, int]:
    """Decode a counters hash read from a broker."""
    out: dict[str, int] = {}
    for k, v in raw.items():
        key = k.decode() if isinstance(k, bytes) else str(k)
        out[key] = int(v)
    return out


def queue_stats(raw: dict[Any, Any]) -> dict[str, int]:
    """Decode a queue's stats hash, with its ``enqueued`` total: the sum of
    ``enqueued|<task>`` (the enqueue script counts per task only, one command fewer on the
    hottest path)."""
    out = parse_stats(raw)
    out["enqueued"] = sum(v for k, v in out.items() if k.startswith("enqueued|"))
    return out
