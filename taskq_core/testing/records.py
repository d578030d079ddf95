"""What was enqueued, and the assertions on it (``assert_enqueued``, ``assert_not_enqueued``).

A :class:`Recorder` is filled by the test broker (:mod:`taskq_core.testing.broker`) with every
task that reached the broker, decoded from the message itself, so a test sees the arguments
exactly as a worker would (tuples arrive as lists, as they do after JSON).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..brokers.base import EnqueueItem
from ..message import decode
from ..task import Task


@dataclass(frozen=True, slots=True)
class Enqueued:
    """One task that reached the broker."""

    id: str
    name: str
    queue: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    #: when it becomes due (a ``delay`` or ``eta``), by the app's clock; None: at once
    eta: datetime | None

    @classmethod
    def from_item(cls, item: EnqueueItem) -> Enqueued:
        """Decode what the broker was given."""
        m = decode(item.body, task_id=item.id, queue=item.queue)
        eta = datetime.fromtimestamp(m.due_at / 1000, UTC) if m.due_at else None
        return cls(m.id, m.task, m.queue, tuple(m.args), dict(m.kwargs), eta)

    def __str__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        when = f" eta={self.eta.isoformat()}" if self.eta else ""
        return f"{self.name}({', '.join(parts)}) queue={self.queue!r}{when} id={self.id}"


class Recorder:
    """Every task enqueued through one test broker, in order. Thread-safe (web test clients
    and workers may enqueue from other threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Enqueued] = []

    def add(self, records: Sequence[Enqueued]) -> None:
        with self._lock:
            self._items.extend(records)

    def clear(self) -> None:
        """Forget what was recorded so far (say, what a test's setup enqueued)."""
        with self._lock:
            self._items.clear()

    def enqueued(self, task: Task[Any, Any] | str | None = None) -> list[Enqueued]:
        """What was enqueued, oldest first; only tasks of ``task`` (a task or its name) if
        given."""
        name = _name(task) if task is not None else None
        with self._lock:
            return [e for e in self._items if name is None or e.name == name]

    def matching(
        self,
        task: Task[Any, Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> list[Enqueued]:
        """The enqueues of ``task`` whose arguments and queue are those given (each only
        checked when given). Arguments compare as JSON would carry them (a tuple equals
        the list it becomes)."""
        want_args = _jsonish(list(args)) if args is not None else None
        want_kwargs = _jsonish(dict(kwargs)) if kwargs is not None else None
        return [
            e
            for e in self.enqueued(task)
            if (want_args is None or list(e.args) == want_args)
            and (want_kwargs is None or e.kwargs == want_kwargs)
            and (queue is None or e.queue == queue)
        ]

    def assert_enqueued(
        self,
        task: Task[Any, Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
        count: int | None = None,
    ) -> list[Enqueued]:
        """Fail unless ``task`` was enqueued (exactly ``count`` times if given, else at
        least once) with these arguments and queue; returns the matching enqueues."""
        __tracebackhide__ = True  # pytest: failures point at the caller
        if count is not None and (type(count) is not int or count < 0):
            raise ValueError(f"count must be a whole number >= 0, got {count!r}")
        found = self.matching(task, args=args, kwargs=kwargs, queue=queue)
        if (count is None and not found) or (count is not None and len(found) != count):
            times = "at least once" if count is None else _times(count)
            raise AssertionError(
                f"expected {_call(task, args, kwargs, queue)} to be enqueued {times}, "
                f"found {_times(len(found))}\n{self.report()}"
            )
        return found

    def assert_not_enqueued(
        self,
        task: Task[Any, Any] | str,
        *,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        queue: str | None = None,
    ) -> None:
        """Fail if ``task`` was enqueued with these arguments and queue (any, when not
        given)."""
        __tracebackhide__ = True  # pytest: failures point at the caller
        found = self.matching(task, args=args, kwargs=kwargs, queue=queue)
        if found:
            raise AssertionError(
                f"expected {_call(task, args, kwargs, queue)} not to be enqueued, "
                f"found {_times(len(found))}\n{self.report()}"
            )

    def report(self) -> str:
        """What was enqueued, one line each: the body of every failure message."""
        items = self.enqueued()
        if not items:
            return "nothing was enqueued"
        lines = [f"enqueued ({len(items)}):"]
        lines += [f"  {n}. {e}" for n, e in enumerate(items, 1)]
        return "\n".join(lines)


def _name(task: Task[Any, Any] | str) -> str:
    if isinstance(task, Task):
        return task.name
    if isinstance(task, str):
        return task
    raise TypeError(f"expected a task or a task name, got {type(task).__name__}: {task!r}")


def _jsonish(value: Any) -> Any:
    """``value`` as it would come back from JSON: tuples become lists."""
    if isinstance(value, tuple | list):
        return [_jsonish(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    return value


def _times(n: int) -> str:
    return {0: "0 times", 1: "once"}.get(n, f"{n} times")


def _call(
    task: Task[Any, Any] | str,
    args: Sequence[Any] | None,
    kwargs: Mapping[str, Any] | None,
    queue: str | None,
) -> str:
    parts = [repr(a) for a in args] if args is not None else ["..."]
    if kwargs is not None:
        parts += [f"{k}={v!r}" for k, v in kwargs.items()]
    where = f" on queue {queue!r}" if queue is not None else ""
    return f"{_name(task)}({', '.join(parts)}){where}"
