"""Context carried from the code that enqueues into the task: correlation id and W3C trace
context. Web middleware sets it per request; the worker restores it around each task."""

from __future__ import annotations

from contextvars import ContextVar

_trace: ContextVar[dict[str, str] | None] = ContextVar("taskq_trace", default=None)


def current_trace() -> dict[str, str] | None:
    return _trace.get()


def set_trace(trace: dict[str, str] | None) -> object:
    """Set the context for enqueues made from here on; returns a token for :func:`reset_trace`."""
    return _trace.set(dict(trace) if trace else None)


def reset_trace(token: object) -> None:
    _trace.reset(token)  # type: ignore[arg-type]
