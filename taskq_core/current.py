"""``current_task()``: the task running in this context, for progress reports and abort
checks from inside the task (docs/flow-control.md, "Progress and abort").

Reporting progress costs no round trip: the latest report waits in memory and the worker's
next lease renewal carries it (every ``worker.renew_interval``, a third of the lease by
default). An abort request reaches the task the same way, at the next renewal.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

import orjson

from .errors import InvalidOption, TaskAborted, TaskqError

if TYPE_CHECKING:
    from .message import Message
    from .worker.records import Running

#: the longest progress text kept (characters)
MAX_PROGRESS_TEXT = 200


class CurrentTask:
    """The task running in this context: its id, queue, name and attempt, and its
    progress and abort channel."""

    __slots__ = ("_run", "attempt", "id", "name", "queue")

    def __init__(self, run: Running, message: Message) -> None:
        self._run = run
        self.id = message.id
        self.queue = message.queue
        self.name = message.task
        #: executions of this task that failed before this one (retries taken)
        self.attempt = message.attempt

    def __repr__(self) -> str:
        return f"CurrentTask(id={self.id!r}, name={self.name!r}, queue={self.queue!r})"

    @property
    def started_ms(self) -> int:
        """When this attempt started, in milliseconds since the epoch from the worker's
        clock: the ``started_at`` its record shows (a sync task's, when its thread began
        the call)."""
        return self._run.began_ms or self._run.started_ms

    @property
    def aborted(self) -> bool:
        """True once someone asked to abort this task (``handle.abort()``): a sync task
        should stop soon (raising, or returning early)."""
        return self._run.aborted_at > 0

    def progress(self, fraction: float, text: str | None = None) -> None:
        """Report how far the task is (``fraction`` from 0 to 1, and a short ``text``).
        Shown by ``handle.info()``, ``GET <prefix>/jobs/{id}`` and ``taskq inspect``.
        Raises :class:`~taskq_core.errors.TaskAborted` once the task was asked to abort."""
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, int | float)
            or not math.isfinite(fraction)
            or not 0 <= fraction <= 1
        ):
            raise InvalidOption(f"progress fraction must be a number from 0 to 1, got {fraction!r}")
        if text is not None and (not isinstance(text, str) or len(text) > MAX_PROGRESS_TEXT):
            raise InvalidOption(
                f"progress text must be a string of at most {MAX_PROGRESS_TEXT} characters"
            )
        self._run.progress = orjson.dumps(
            {"fraction": float(fraction), "text": text, "at": int(time.time() * 1000)}
        )
        if self._run.aborted_at:
            raise TaskAborted(f"task {self.name} {self.id} was asked to abort")


#: the run and message of the task running in this context: a tuple, set for every task on
#: the worker's hot path, the CurrentTask made only when a task asks for it
_current: ContextVar[tuple[Running, Message] | None] = ContextVar(
    "taskq_current_task", default=None
)


def current_task() -> CurrentTask:
    """The task running in this context (an async task, or a sync task's thread); raises
    :class:`~taskq_core.errors.TaskqError` outside one."""
    found = _current.get()
    if found is None:
        raise TaskqError(
            "current_task() was called outside a running task (it works in a task's "
            "body, and in what that body calls in the same thread or asyncio task)"
        )
    return CurrentTask(*found)


def set_current(run: Running, message: Message) -> Token[tuple[Running, Message] | None]:
    return _current.set((run, message))


def reset_current(token: Token[tuple[Running, Message] | None]) -> None:
    _current.reset(token)
