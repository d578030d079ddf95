"""The application object."""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .brokers.base import Broker, EnqueueItem
from .brokers.base import Settings as BrokerSettings
from .capabilities import check_capabilities, routed_queue, split_queue
from .clock import Clock, SystemClock, script_ms
from .context import current_trace
from .errors import DuplicateTask, InvalidOption, MissingExtra, UnknownTask
from .flow import NO_FLOW, NO_GATE, Flow
from .flow import gate as flow_gate
from .handle import TaskHandle
from .message import Message
from .middleware import Middleware
from .retry import RetryPolicy
from .settings import Settings
from .signing import Signer
from .task import EnqueueOptions, Signature, Task
from .validation import (
    NAME_CHARS,
    check_due,
    check_json,
    check_positive,
    check_queue_name,
    check_retries,
    check_task_name,
    check_timeout,
)
from .web import active_scope

if TYPE_CHECKING:
    from datetime import timedelta

    from .schedule import Schedule
    from .scheduler import Scheduler
    from .worker import Worker
    from .workflow import Workflow, WorkflowHandle

P = ParamSpec("P")
R = TypeVar("R")


def make_broker(settings: Settings) -> Broker:
    """The broker a settings object names: ``memory://``, a PostgreSQL or a Redis URL."""
    bs = BrokerSettings(
        lease_ms=int(settings.worker.lease_seconds * 1000),
        max_deliveries=settings.worker.max_deliveries,
        result_ttl_ms=int(settings.result_ttl * 1000),
        idempotency_ttl_ms=int(settings.idempotency_ttl * 1000),
    )
    if settings.broker_url.startswith("memory://"):
        from .brokers.memory import MemoryBroker

        return MemoryBroker(bs, url=settings.broker_url)
    if settings.broker_url.startswith(("postgresql://", "postgres://")):
        try:
            from .brokers.postgres.broker import PostgresBroker
        except ImportError as exc:
            raise MissingExtra(
                "the PostgreSQL broker (psycopg 3 and its pool)", "postgres"
            ) from exc

        return PostgresBroker(
            settings.broker_url,
            prefix=settings.key_prefix,
            settings=bs,
            max_connections=settings.broker.max_connections,
            connect_timeout=settings.broker.socket_timeout or 5.0,
            call_timeout=settings.broker.socket_timeout,
        )
    from .brokers.redis import RedisBroker
    from .tls import client_options

    return RedisBroker(
        settings.broker_url,
        prefix=settings.key_prefix,
        settings=bs,
        max_connections=settings.broker.max_connections,
        socket_timeout=settings.broker.socket_timeout,
        tls=client_options(settings),
        min_replicas_acked=settings.broker.min_replicas_acked,
        replica_ack_timeout=settings.broker.replica_ack_timeout,
    )


class TaskQueue:
    """Configuration, task registry and broker of one application.

    ``TaskQueue("redis://127.0.0.1:6379/0", key_prefix="shop", worker={"concurrency": 8})``
    takes the built-in defaults and the arguments given, and nothing else;
    :meth:`from_config` is the one way that also reads configuration files and ``TASKQ_*``
    environment variables. A TaskQueue built otherwise while ``TASKQ_*`` variables are set
    warns (:class:`~taskq_core.errors.UnusedConfigWarning`), naming them.
    """

    def __init__(
        self,
        broker: str | Broker | None = None,
        *,
        settings: Settings | None = None,
        clock: Clock | None = None,
        **options: Any,
    ) -> None:
        if settings is None:
            if isinstance(broker, str):
                options["broker_url"] = broker
            settings = Settings(**options)
        elif options or isinstance(broker, str):
            raise InvalidOption("pass either settings=... or individual options, not both")
        if not settings.from_config:
            # TASKQ_* variables are read by from_config() only: say so if some are set
            from .config.unused import warn_unused

            warn_unused()
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.broker: Broker = (
            broker
            if broker is not None and not isinstance(broker, str)
            else (make_broker(settings))
        )
        self.registry: dict[str, Task[Any, Any]] = {}
        #: queue-wide flow control (``tq.limit_queue(...)``), by queue
        self.queue_flows: dict[str, Flow] = {}
        #: schedules by name (``tq.schedule(...)``), enqueued by ``taskq scheduler``
        self.schedules: dict[str, Schedule] = {}
        #: task middleware every worker of this application runs (see middleware.py)
        self.middleware: list[Middleware] = []
        #: callables given every alert event, fired or cleared (see observability/alerts.py)
        self.alert_sinks: list[Callable[[dict[str, Any]], None]] = []
        #: set by observability.tracing.instrument: opens the enqueue span of a message and
        #: returns the trace context it carries (arguments: context, task, queue, task id)
        self.trace_hook: (
            Callable[[dict[str, str] | None, str, str, str], dict[str, str] | None] | None
        ) = None
        #: the connection enqueues write through when none is given (transactional.py):
        #: taskq_django's hook returns the default database's inside ``atomic()``
        self.transaction_hook: Callable[[], Any] | None = None
        self._imported = False
        self._signer: Signer | None = None
        self._signer_keys: dict[str, Any] | None = None
        from .observability import install_defaults
        from .observability.custom import Metrics

        #: the application's own counters, gauges and histograms (observability/custom.py)
        self.metrics = Metrics(self)

        # metrics, heartbeat and task log middleware, as monitoring settings say
        install_defaults(self)

    @property
    def signer(self) -> Signer | None:
        """The message signer of ``security.signing_keys``; None while signing is off."""
        keys = self.settings.security.signing_keys
        if keys is not self._signer_keys:  # built again when the settings change
            self._signer_keys = keys
            self._signer = (
                Signer({k: v.get_secret_value() for k, v in keys.items()}) if keys else None
            )
        return self._signer

    @classmethod
    def from_config(cls, config_file: str | None = None, **overrides: Any) -> TaskQueue:
        """Settings from defaults, files, ``TASKQ_*`` variables, then ``overrides``."""
        from .config import load_settings

        return cls(settings=load_settings(config_file, overrides))

    def __repr__(self) -> str:
        return f"TaskQueue({self.broker!r}, tasks={len(self.registry)})"

    # -- registration

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        requires: Iterable[str] | str | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
        retry_backoff_max: float | None = None,
        retry_jitter: float | None = None,
        retry_on: Sequence[type[BaseException]] | Mapping[type[BaseException], int] | None = None,
        timeout: float | None = None,
        hard_timeout: float | None = None,
        rate_limit: str | None = None,
        rate_burst: int | None = None,
        rate_key: Callable[..., str] | None = None,
        max_concurrency: int | None = None,
        concurrency_key: Callable[..., str] | None = None,
        expires: float | timedelta | None = None,
        expired_to_dead_letter: bool = False,
        unique: bool = False,
        unique_key: Callable[..., str] | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str = "finished",
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...

    def task(
        self,
        fn: Callable[P, R] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str | None = None,
        requires: Iterable[str] | str | None = None,
        max_retries: int | None = None,
        retry_backoff: float | None = None,
        retry_backoff_max: float | None = None,
        retry_jitter: float | None = None,
        retry_on: Sequence[type[BaseException]] | Mapping[type[BaseException], int] | None = None,
        timeout: float | None = None,
        hard_timeout: float | None = None,
        rate_limit: str | None = None,
        rate_burst: int | None = None,
        rate_key: Callable[..., str] | None = None,
        max_concurrency: int | None = None,
        concurrency_key: Callable[..., str] | None = None,
        expires: float | timedelta | None = None,
        expired_to_dead_letter: bool = False,
        unique: bool = False,
        unique_key: Callable[..., str] | None = None,
        unique_for: float | timedelta | None = None,
        unique_until: str = "finished",
    ) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
        """Register a function (plain or ``async def``) as a task.

        Used bare (``@tq.task``) or with options (``@tq.task(queue="high", max_retries=5)``).
        The name defaults to ``module.qualname``; it is what messages carry, so keep it
        stable when you move code (or pass ``name=``).

        ``timeout`` is the soft time limit (an exception raised in the task);
        ``hard_timeout`` the hard one, enforced by the supervisor (``taskq worker
        --processes``), which kills the process running a task past it and retries or
        fails the task by its policy (default: ``supervisor.hard_timeout``).

        Flow control (docs/flow-control.md), enforced cluster-wide by the broker at fetch:
        ``rate_limit`` (``"100/m"``, ``"10/s"``; ``rate_burst`` starts at once after a
        quiet spell) and ``max_concurrency``, each per key when ``rate_key`` /
        ``concurrency_key`` (functions of the task's arguments, run at enqueue) are given;
        ``expires`` (seconds after enqueue: not started by then, not run, recorded as
        expired, or dead-lettered with ``expired_to_dead_letter``); ``unique`` (or a
        ``unique_key`` function): while one is queued or running (``unique_until``
        ``"finished"`` or ``"started"``, for at most ``unique_for``), enqueuing another
        returns the existing task's handle.

        ``requires`` (capability names, ``{"gpu"}`` or ``"gpu,eu"``): only a worker started
        with all of them (``taskq worker --capabilities gpu,eu``) runs the task; it goes to
        the routed queue ``<queue>@eu.gpu`` (taskq_core/capabilities.py, docs/scaling.md).
        """
        r = self.settings.retry
        if retry_jitter is not None and not 0 <= check_positive(retry_jitter, "retry_jitter") <= 1:
            raise InvalidOption(f"retry_jitter must be between 0 and 1, got {retry_jitter!r}")
        policy = RetryPolicy(
            max_retries=check_retries(max_retries) if max_retries is not None else r.max_retries,
            backoff=(
                check_positive(retry_backoff, "retry_backoff")
                if retry_backoff is not None
                else r.backoff
            ),
            backoff_max=(
                check_positive(retry_backoff_max, "retry_backoff_max")
                if retry_backoff_max is not None
                else r.backoff_max
            ),
            jitter=retry_jitter if retry_jitter is not None else r.jitter,
            retry_on=(tuple(retry_on) if retry_on is not None else (Exception,)),
            limits=_limits(retry_on),
        )
        task_timeout = check_timeout(timeout) if timeout is not None else self.settings.task_timeout
        hard = (
            check_timeout(hard_timeout, "hard_timeout")
            if hard_timeout is not None
            else self.settings.supervisor.hard_timeout
        )
        if hard is not None and task_timeout is not None and hard <= task_timeout:
            raise InvalidOption(
                f"hard_timeout ({hard:g}s) must be longer than the soft timeout "
                f"({task_timeout:g}s): the soft limit is the task's chance to stop cleanly "
                "(options of the task, else the settings supervisor.hard_timeout and "
                "task_timeout)"
            )
        task_queue = check_queue_name(queue) if queue is not None else self.settings.default_queue
        needs = check_capabilities(requires, "requires")
        routed_queue(task_queue, needs)  # the routed name is checked here, at declaration
        flow = Flow.make(
            rate_limit=rate_limit,
            rate_burst=rate_burst,
            rate_key=rate_key,
            max_concurrency=max_concurrency,
            concurrency_key=concurrency_key,
            expires=_seconds(expires),
            expired_to_dead_letter=expired_to_dead_letter,
            unique=unique,
            unique_key=unique_key,
            unique_for=_seconds(unique_for),
            unique_until=unique_until,
        )

        def register(f: Callable[P, R]) -> Task[P, R]:
            task_name = check_task_name(name if name is not None else _default_name(f))
            existing = self.registry.get(task_name)
            if existing is not None and existing.fn is not f:
                raise DuplicateTask(
                    f"task name {task_name!r} is already registered to "
                    f"{existing.fn.__module__}.{existing.fn.__qualname__}"
                )
            t: Task[P, R] = Task(
                self,
                f,
                name=task_name,
                queue=task_queue,
                policy=policy,
                timeout=task_timeout,
                hard_timeout=hard,
                flow=flow,
                requires=needs,
            )
            self.registry[task_name] = t
            return t

        return register(fn) if fn is not None else register

    def limit_queue(
        self,
        queue: str,
        *,
        rate_limit: str | None = None,
        rate_burst: int | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        """Limit every task enqueued into ``queue`` by this application, cluster-wide: at
        most ``rate_limit`` starts (``"100/m"``) and ``max_concurrency`` running at once,
        besides each task's own limits. Declare it where every producer sees it (with the
        tasks): the limit travels with each enqueue."""
        name = check_queue_name(queue)
        if rate_limit is None and max_concurrency is None:
            raise InvalidOption("limit_queue needs rate_limit or max_concurrency")
        self.queue_flows[name] = Flow.make(
            rate_limit=rate_limit, rate_burst=rate_burst, max_concurrency=max_concurrency
        )

    def get_task(self, name: str) -> Task[Any, Any]:
        try:
            return self.registry[name]
        except KeyError:
            raise UnknownTask(
                f"no task named {name[:200]!r} is registered"
                + (f" (known: {', '.join(sorted(self.registry)[:20])})" if self.registry else "")
            ) from None

    def load_imports(self) -> None:
        """Import the modules in ``settings.imports`` and the ``taskq.tasks`` entry points.

        Entry points name a module, or a callable that receives this TaskQueue.
        """
        if self._imported:
            return
        self._imported = True
        for module in self.settings.imports:
            importlib.import_module(module)
        for ep in entry_points(group="taskq.tasks"):
            loaded = ep.load()
            if callable(loaded):
                loaded(self)

    # -- enqueueing

    def signature(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A registered task by name, with arguments and options (for the CLI and bulk)."""
        return Signature(
            self.get_task(name), tuple(args), dict(kwargs or {}), EnqueueOptions.make(**options)
        )

    def _items(
        self,
        signatures: Sequence[Signature],
        steps: Sequence[dict[str, Any]] | None = None,
    ) -> tuple[list[EnqueueItem], int]:
        """The items to enqueue, every one checked first (``steps``: the ``wf`` field of
        each message, for the steps of a workflow)."""
        now = self.clock.time()
        now_ms = int(now * 1000)
        limit = self.settings.max_payload_bytes
        compress_above = self.settings.compress_above
        compact = self.settings.message_format == "compact"
        signer = self.signer
        items: list[EnqueueItem] = []
        # the ids of the batch from one read of the system's random source
        random_ids = os.urandom(16 * len(signatures)).hex()
        for n, sig in enumerate(signatures):
            task, o = sig.task, sig.options
            if task.app is not self and self.registry.get(task.name) is not task:
                raise UnknownTask(f"task {task.name!r} is not registered with this TaskQueue")
            check_json(sig.args, "args")
            check_json(sig.kwargs, "kwargs")
            # a delay counts from the broker's now (Redis's clock, as leases do); an ETA is
            # an absolute time by this process's clock. due_at (the message's) is this
            # process's reading either way: wait-time metrics count from it
            due_ms = delay_ms = 0
            if o.delay is not None:
                delay_ms = int(o.delay * 1000)
                due_ms = now_ms + delay_ms
            elif o.eta is not None:
                due_ms = int(check_due(o.eta, now) * 1000)
            queue = task.queue_for(o)
            # flow control: key functions run here, in the producer (nothing written yet);
            # a task without any option skips it (the hot path)
            gate = (
                flow_gate(
                    task.name,
                    queue,
                    task_flow=task.flow,
                    # a routed queue (default@gpu) keeps its base queue's limits
                    queue_flow=self.queue_flows.get(queue)
                    or self.queue_flows.get(split_queue(queue)[0], NO_FLOW),
                    args=sig.args,
                    kwargs=sig.kwargs,
                    now=now,
                    expires=o.expires,
                )
                if task.flow is not NO_FLOW or o.expires is not None or self.queue_flows
                else NO_GATE
            )
            task_id = o.task_id or random_ids[n * 32 : n * 32 + 32]
            trace = current_trace()
            if self.trace_hook is not None:
                trace = self.trace_hook(trace, task.name, queue, task_id)
            body = Message(
                id=task_id,
                task=task.name,
                queue=queue,
                args=list(sig.args),
                kwargs=sig.kwargs,
                enqueued_at=now_ms,
                due_at=due_ms or None,
                max_retries=o.max_retries,
                timeout=o.timeout,
                idempotency_key=o.idempotency_key,
                trace=trace,
                expires_at=gate.expires_at,
                wf=steps[n] if steps is not None else None,
            ).encode(limit, signer, compress_above, compact=compact)
            items.append(
                EnqueueItem(
                    queue,
                    task_id,
                    task.name,
                    body,
                    0 if o.delay is not None else due_ms,
                    o.idempotency_key,
                    delay_ms,
                    gate.data,
                    gate.unique_key,
                    gate.unique_window_ms,
                )
            )
        return items, script_ms(self.clock)

    def transaction(self, connection: Any) -> contextlib.AbstractContextManager[None]:
        """``with tq.transaction(conn):`` every enqueue in the block is written in
        ``conn``'s transaction (PostgreSQL broker): it exists if and only if that
        transaction commits. ``conn``: psycopg 3, a SQLAlchemy session or connection, or a
        Django connection (docs/postgres.md, "Transactional enqueue")."""
        from .transactional import transaction

        return transaction(self, connection)

    def _connection(self, signatures: Sequence[Signature]) -> Any:
        if self.transaction_hook is None and not any(
            s.options.connection is not None for s in signatures
        ):
            from .transactional import _current

            if _current.get() is None:
                return None  # the usual enqueue: no lookup at all
        from .transactional import connection_for

        given = {id(s.options.connection): s.options.connection for s in signatures}
        given.pop(id(None), None)
        if len(given) > 1:
            raise InvalidOption("one enqueue_many writes through one connection, not several")
        return connection_for(self, next(iter(given.values()), None))

    def enqueue_many(self, signatures: Sequence[Signature]) -> list[TaskHandle]:
        """Enqueue many tasks in one round trip; every one is checked before any is sent."""
        items, now_ms = self._items(signatures)
        conn = self._connection(signatures)
        if conn is not None:
            # in the application's transaction: it commits or rolls back with it, so no
            # request scope needs to hold it back
            ids = self.broker.enqueue(items, now_ms, connection=conn)  # type: ignore[call-arg]
            return _handles(self, ids, items)
        if (scope := active_scope()) is not None and scope.app is self:
            scope.note(len(items))
            if scope.defer:
                # held until the request succeeds; ids were made here, so handles are valid
                scope.hold(items)
                return [TaskHandle(self, it.id, it.queue) for it in items]
        ids = self.broker.enqueue(items, now_ms)
        return _handles(self, ids, items)

    async def enqueue_many_async(self, signatures: Sequence[Signature]) -> list[TaskHandle]:
        """The async form of :meth:`enqueue_many`."""
        items, now_ms = self._items(signatures)
        conn = self._connection(signatures)
        if conn is not None:
            ids = await self.broker.enqueue_async(items, now_ms, connection=conn)  # type: ignore[call-arg]
            return _handles(self, ids, items)
        if (scope := active_scope()) is not None and scope.app is self:
            scope.note(len(items))
            if scope.defer:
                scope.hold(items)
                return [TaskHandle(self, it.id, it.queue) for it in items]
        ids = await self.broker.enqueue_async(items, now_ms)
        return _handles(self, ids, items)

    def enqueue(
        self,
        name: str,
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> TaskHandle:
        """Enqueue a registered task by name."""
        return self.enqueue_many([self.signature(name, args, kwargs, **options)])[0]

    # -- workflows

    def workflow(
        self,
        *,
        policy: str = "stop",
        on_error: Signature | Any | None = None,
        ttl: float | timedelta | None = None,
        workflow_id: str | None = None,
    ) -> Workflow:
        """A workflow to build step by step (a DAG: ``add(piece, after=[...])``), then
        ``enqueue()``. ``policy``: ``"stop"`` (a failure cancels what has not finished and
        fails the workflow) or ``"continue"`` (independent branches finish first);
        ``on_error``: a task's ``call(...)`` run once if the workflow fails, given what
        failed; ``ttl``: seconds its record is kept once finished (``result_ttl``)."""
        from .workflow import Workflow

        return Workflow(self, policy=policy, on_error=on_error, ttl=ttl, workflow_id=workflow_id)

    def workflow_handle(self, workflow_id: str) -> WorkflowHandle:
        from .workflow import WorkflowHandle

        return WorkflowHandle(self, workflow_id)

    # -- looking tasks up

    def handle(self, task_id: str, queue: str | None = None) -> TaskHandle:
        return TaskHandle(self, task_id, queue or self.settings.default_queue)

    def find(self, task_id: str) -> TaskHandle | None:
        """The handle of a task given only its id, searching every known queue."""
        queues = dict.fromkeys([*self.settings.queues, *self.broker.known_queues()])
        for q in queues:
            if self.broker.get(q, task_id) is not None:
                return TaskHandle(self, task_id, q)
        return None

    def queues(self) -> list[str]:
        """Configured queues first (in priority order), then any other queue seen."""
        return list(dict.fromkeys([*self.settings.queues, *self.broker.known_queues()]))

    # -- schedules

    def schedule(
        self,
        task: Task[Any, Any] | str,
        *,
        cron: str | None = None,
        every: float | timedelta | None = None,
        timezone: str = "UTC",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        **enqueue_options: Any,
    ) -> Schedule:
        """Enqueue ``task`` (a registered Task or its name) on a schedule.

        Exactly one of ``cron`` (five fields, evaluated in ``timezone``) and ``every``
        (seconds or a ``timedelta``, ticks aligned to the Unix epoch). ``enqueue_options``
        may set ``queue``, ``max_retries`` and ``timeout``. The name defaults to the task's
        name and the spec (``"reports.daily cron 0 9 * * * (Europe/Paris)"``). Every
        argument is checked here; a scheduler (``taskq scheduler``) enqueues the ticks::

            tq.schedule(send_digest, cron="0 9 * * 1-5", timezone="Europe/Paris")
            tq.schedule("cleanup", every=300, kwargs={"older_than": 86400})
        """
        from .schedule import make_schedule

        s = make_schedule(
            self,
            task,
            cron=cron,
            every=every,
            timezone=timezone,
            args=args,
            kwargs=kwargs,
            name=name,
            options=enqueue_options,
        )
        self.schedules[s.name] = s
        return s

    def scheduler(self, **options: Any) -> Scheduler:
        """A :class:`~taskq_core.scheduler.Scheduler` for this application's schedules."""
        from .scheduler import Scheduler

        return Scheduler(self, **options)

    # -- workers

    def worker(self, **options: Any) -> Worker:
        """A :class:`~taskq_core.worker.Worker` for this application."""
        from .worker import Worker

        return Worker(self, **options)

    def close(self) -> None:
        """Write the custom metrics still buffered, and close the broker's connections."""
        self.metrics.close()
        self.broker.close()

    async def aclose(self) -> None:
        """:meth:`close` from async code."""
        await self.metrics.aclose()
        await self.broker.aclose()


def _handles(app: TaskQueue, ids: Sequence[str], items: Sequence[EnqueueItem]) -> list[TaskHandle]:
    """The handles of an enqueue: a returned id other than the one sent is the task that
    was there already (unique, idempotency key)."""
    return [
        TaskHandle(app, i, it.queue, existing=i != it.id) for i, it in zip(ids, items, strict=True)
    ]


def _seconds(value: float | timedelta | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


def _limits(
    retry_on: Sequence[type[BaseException]] | Mapping[type[BaseException], int] | None,
) -> dict[type[BaseException], int]:
    """``retry_on={ConnectionError: 10}`` gives that type its own max_retries."""
    if not isinstance(retry_on, Mapping):
        return {}
    for kind, limit in retry_on.items():
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise InvalidOption(f"retry_on keys must be exception types, got {kind!r}")
        check_retries(limit, f"retry_on[{kind.__name__}]")
    return dict(retry_on)


def _default_name(fn: Callable[..., Any]) -> str:
    """``module.qualname``, with ``<locals>`` parts dropped and other odd characters
    replaced, so functions defined inside functions register too."""
    qualname = fn.__qualname__.replace("<locals>.", "")
    return _ODD.sub("_", f"{fn.__module__}.{qualname}")


_ODD = re.compile(f"[^{NAME_CHARS}]")
