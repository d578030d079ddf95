"""Registered tasks and the ways to enqueue them."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar

from .capabilities import check_capabilities, routed_queue
from .flow import NO_FLOW, Flow
from .flow.limits import check_expires
from .retry import RetryPolicy
from .validation import (
    MAX_IDEMPOTENCY_KEY,
    check_delay,
    check_eta,
    check_name,
    check_queue_name,
    check_retries,
    check_task_id,
    check_timeout,
)

if TYPE_CHECKING:
    from .app import TaskQueue
    from .handle import TaskHandle
    from .workflow.canvas import Step

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class EnqueueOptions:
    """Per-enqueue choices; every field is checked when the options are made."""

    queue: str | None = None
    delay: float | None = None
    eta: float | None = None  # epoch seconds
    idempotency_key: str | None = None
    max_retries: int | None = None
    timeout: float | None = None
    task_id: str | None = None
    #: seconds after enqueue, or an aware datetime: not started by then, not run
    expires: float | datetime | None = None
    #: capabilities this enqueue requires besides the task's own (taskq_core/capabilities.py)
    requires: frozenset[str] | None = None
    #: the application's database connection the enqueue is written through, in its
    #: transaction (PostgreSQL broker: taskq_core/transactional.py); never serialised
    connection: Any = None

    @classmethod
    def make(
        cls,
        *,
        queue: str | None = None,
        delay: float | timedelta | None = None,
        eta: datetime | None = None,
        idempotency_key: str | None = None,
        max_retries: int | None = None,
        timeout: float | None = None,
        task_id: str | None = None,
        expires: float | timedelta | datetime | None = None,
        requires: Iterable[str] | str | None = None,
        connection: Any = None,
    ) -> EnqueueOptions:
        if delay is not None and eta is not None:
            from .errors import InvalidOption

            raise InvalidOption("give either delay or eta, not both")
        return cls(
            queue=check_queue_name(queue) if queue is not None else None,
            delay=check_delay(delay),
            eta=check_eta(eta),
            idempotency_key=(
                check_name("idempotency key", idempotency_key, MAX_IDEMPOTENCY_KEY)
                if idempotency_key is not None
                else None
            ),
            max_retries=check_retries(max_retries) if max_retries is not None else None,
            timeout=check_timeout(timeout),
            task_id=check_task_id(task_id) if task_id is not None else None,
            expires=_check_enqueue_expires(expires),
            requires=check_capabilities(requires, "requires") or None,
            connection=connection,
        )


def _check_enqueue_expires(value: object) -> float | datetime | None:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            from .errors import InvalidOption

            raise InvalidOption("expires must be timezone-aware when it is a datetime")
        return value  # whether it is past is checked at enqueue, against the clock
    return check_expires(value)


@dataclass(frozen=True, slots=True)
class Signature:
    """A task with its arguments and options, ready to enqueue (alone or in bulk)."""

    task: Task[Any, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: EnqueueOptions

    def enqueue(self) -> TaskHandle:
        return self.task.app.enqueue_many([self])[0]

    async def enqueue_async(self) -> TaskHandle:
        return (await self.task.app.enqueue_many_async([self]))[0]

    # -- as a workflow step (taskq_core/workflow)

    def immutable(self) -> Step:
        """A workflow step that ignores the previous result (Celery's ``si``)."""
        from .workflow.canvas import Step

        return Step(self).immutable()

    si = immutable

    def when(self, test: str | Signature = "truthy", *, equals: Any = None) -> Step:
        """A workflow step run only when its condition holds (see ``Step.when``)."""
        from .workflow.canvas import Step

        return Step(self).when(test, equals=equals)

    def until(
        self,
        *,
        every: float | timedelta = 1.0,
        timeout: float | timedelta,
        max_every: float | timedelta | None = None,
    ) -> Step:
        """A workflow step re-running this check until it returns true (``Step.until``)."""
        from .workflow.canvas import Step

        return Step(self).until(every=every, timeout=timeout, max_every=max_every)


class Task(Generic[P, R]):
    """A function registered with a :class:`~taskq_core.TaskQueue`.

    Calling it runs the function here and now; ``enqueue`` sends it to a worker.
    """

    def __init__(
        self,
        app: TaskQueue,
        fn: Callable[P, R],
        *,
        name: str,
        queue: str,
        policy: RetryPolicy,
        timeout: float | None,
        options: EnqueueOptions | None = None,
        hard_timeout: float | None = None,
        flow: Flow = NO_FLOW,
        requires: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.fn = fn
        self.name = name
        self.queue = queue
        self.policy = policy
        self.timeout = timeout
        #: seconds after which the supervisor kills the process running this task
        self.hard_timeout = hard_timeout
        #: rate limits, concurrency caps, expiry, uniqueness (taskq_core/flow)
        self.flow = flow
        #: capabilities a worker must have to run it (taskq_core/capabilities.py)
        self.requires = requires
        #: the queue its tasks go to: ``queue``, or with requirements the routed queue
        self.routed_queue = routed_queue(queue, requires)
        self.is_async = inspect.iscoroutinefunction(fn)
        self._options = options or EnqueueOptions()
        self.__doc__ = fn.__doc__
        self.__name__ = getattr(fn, "__name__", name)
        self.__wrapped__ = fn

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def options(self, **options: Any) -> Task[P, R]:
        """A copy with enqueue options set: ``queue``, ``delay``, ``eta``,
        ``idempotency_key``, ``max_retries``, ``timeout``, ``task_id``, ``expires``,
        ``requires``, ``connection`` (write in that database transaction: PostgreSQL)."""
        merged = EnqueueOptions.make(**options)
        base = self._options
        combined = replace(
            base,
            **{f: getattr(merged, f) for f in merged.__slots__ if getattr(merged, f) is not None},
        )
        return Task(
            self.app,
            self.fn,
            name=self.name,
            queue=self.queue,
            policy=self.policy,
            timeout=self.timeout,
            options=combined,
            hard_timeout=self.hard_timeout,
            flow=self.flow,
            requires=self.requires,
        )

    def queue_for(self, options: EnqueueOptions) -> str:
        """The queue an enqueue with ``options`` goes to: the options' queue or the task's,
        routed by the task's and the options' requirements."""
        if options.queue is None and options.requires is None:
            return self.routed_queue
        needs = self.requires | (options.requires or frozenset())
        return routed_queue(options.queue or self.queue, needs)

    def call(self, *args: P.args, **kwargs: P.kwargs) -> Signature:
        """This task with these arguments, for :meth:`TaskQueue.enqueue_many`."""
        return Signature(self, args, kwargs, self._options)

    def s(self, *args: Any, **kwargs: Any) -> Signature:
        """A partial call, for a workflow step that gets the previous result as its first
        argument (Celery's ``s``): ``chain(fetch.call(url), parse.s(), store.s(db="main"))``.
        Not checked against the function's signature by a type checker, as ``call`` is."""
        return Signature(self, args, kwargs, self._options)

    def si(self, *args: Any, **kwargs: Any) -> Step:
        """A workflow step that ignores the previous result (Celery's ``si``)."""
        return self.s(*args, **kwargs).immutable()

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """Send the task to a worker; returns once the broker has stored it."""
        return self.app.enqueue_many([Signature(self, args, kwargs, self._options)])[0]

    async def enqueue_async(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle:
        """The same as :meth:`enqueue`, natively async (no thread hop)."""
        sig = Signature(self, args, kwargs, self._options)
        return (await self.app.enqueue_many_async([sig]))[0]
