"""Task middleware: the hooks through which metrics, tracing, logging and framework glue
watch and wrap task execution, so none of them is a special case inside the worker.

Hooks are documented no-ops. ``before_*`` hooks run in registration order, ``after_*`` hooks
in reverse. A hook that raises is logged and ignored: it never fails a task or the worker.
``wrap`` hooks (for context managers such as a Flask app context) compose around the call.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .brokers.base import Lease
    from .message import Message
    from .worker import Worker

log = logging.getLogger("taskq.middleware")


@dataclass(slots=True)
class TaskEvent:
    """What an ``after_task`` hook learns about one execution."""

    message: Message
    outcome: str  # ok | retry | failed | dead
    runtime: float  # seconds spent running the task
    wait: float  # seconds from enqueue (or due time) to start
    error: dict[str, str] | None = None
    timed_out: bool = False
    result: Any = None  # the return value of a successful run


class Middleware:
    """Base class: override the hooks you need."""

    def worker_started(self, worker: Worker) -> None:
        """The worker's loop is running (called in the loop)."""

    def worker_stopping(self, worker: Worker) -> None:
        """The worker has stopped fetching and is about to return."""

    def tick(self, worker: Worker) -> None:
        """Called from the loop about every ``renew_interval`` seconds (heartbeats)."""

    def leased(self, worker: Worker, leases: Sequence[Lease]) -> None:
        """A fetch leased these deliveries (in the loop, before any of them starts: some
        may wait for a free slot). The supervisor's child reports them, so that a process
        that dies hands back the tasks it held but had not started yet, too."""

    def before_task(self, worker: Worker, message: Message) -> None:
        """A delivery is about to run (in the loop, before the task's thread or coroutine)."""

    def after_task(self, worker: Worker, event: TaskEvent) -> None:
        """A delivery ended; its outcome is about to be settled in the broker."""

    def abort_requested(self, worker: Worker, lease: Lease) -> None:
        """Someone asked to abort the running task of ``lease`` (in the loop); the
        supervisor's child reports it, so a task that ignores it is killed after
        ``worker.abort_grace`` seconds."""

    def before_settle(self, worker: Worker) -> None:
        """The worker is about to send finished outcomes and counters to the broker: a
        middleware that sums counters itself adds them now, with ``worker.add_stat``."""

    def wrap(self, message: Message) -> contextlib.AbstractContextManager[None]:
        """Context around the task's own code, entered where it runs (its thread for a sync
        task, the loop for an async one). Override it with a ``@contextlib.contextmanager``
        generator, or return any context manager."""
        return contextlib.nullcontext()


_overridden: dict[tuple[type[Middleware], str], bool] = {}


def overrides(hook: Middleware, name: str) -> bool:
    """Does ``hook`` do anything in ``name``? (The base class's hooks are no-ops: skipping
    them keeps the per-task cost of middleware to the hooks that exist.)"""
    key = (type(hook), name)
    found = _overridden.get(key)
    if found is None:
        found = _overridden[key] = getattr(type(hook), name) is not getattr(Middleware, name)
    return found


def call_hooks(hooks: list[Middleware], name: str, *args: Any) -> None:
    """Call ``name`` on each hook in order (reverse for ``after_*``), logging failures."""
    ordered = reversed(hooks) if name.startswith("after") else hooks
    for h in ordered:
        if not overrides(h, name):
            continue
        try:
            getattr(h, name)(*args)
        except Exception:
            log.exception("middleware %s.%s failed", type(h).__name__, name)


class Hooks:
    """The hooks of a middleware list that do something, looked up once: a worker calls
    these for every task, so it does not search the list each time."""

    __slots__ = ("after_task", "before_settle", "before_task", "leased", "wrap")

    def __init__(self, middleware: list[Middleware]) -> None:
        self.leased: list[Callable[..., None]] = [
            h.leased for h in middleware if overrides(h, "leased")
        ]
        self.before_task: list[Callable[..., None]] = [
            h.before_task for h in middleware if overrides(h, "before_task")
        ]
        self.after_task: list[Callable[..., None]] = [
            h.after_task for h in reversed(middleware) if overrides(h, "after_task")
        ]
        self.before_settle: list[Callable[..., None]] = [
            h.before_settle for h in middleware if overrides(h, "before_settle")
        ]
        self.wrap: list[Middleware] = [h for h in middleware if overrides(h, "wrap")]


def run_hooks(bound: list[Callable[..., None]], *args: Any) -> None:
    """Call each of ``bound`` (from :class:`Hooks`) in order, logging failures."""
    for f in bound:
        try:
            f(*args)
        except Exception:
            log.exception("middleware %s failed", getattr(f, "__qualname__", f))


def wrapped(hooks: list[Middleware], message: Message) -> contextlib.AbstractContextManager[None]:
    """Enter every hook's ``wrap`` context, first hook outermost (``hooks`` as
    :class:`Hooks` lists them: those that override ``wrap``). A hook whose ``wrap`` fails to
    enter is logged and left out."""
    if len(hooks) == 1:
        # the usual case (tracing, or a framework's app context): no ExitStack, whose
        # bookkeeping costs as much as a cheap hook itself, for every task
        return _OneWrap(hooks[0], message)
    return _wrapped_all(hooks, message)


class _OneWrap:
    """One hook's ``wrap`` context, with :func:`wrapped`'s rule for a failure to enter."""

    __slots__ = ("_entered", "_hook", "_message")

    def __init__(self, hook: Middleware, message: Message) -> None:
        self._hook = hook
        self._message = message
        self._entered: contextlib.AbstractContextManager[None] | None = None

    def __enter__(self) -> None:
        try:
            cm = self._hook.wrap(self._message)
            cm.__enter__()
        except Exception:
            log.exception("middleware %s.wrap failed", type(self._hook).__name__)
            return
        self._entered = cm

    def __exit__(self, *exc: Any) -> bool | None:
        cm, self._entered = self._entered, None
        return cm.__exit__(*exc) if cm is not None else None


@contextlib.contextmanager
def _wrapped_all(hooks: list[Middleware], message: Message) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        for h in hooks:
            try:
                stack.enter_context(h.wrap(message))
            except Exception:
                log.exception("middleware %s.wrap failed", type(h).__name__)
        yield
