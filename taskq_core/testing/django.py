"""Django: the enqueues ``DEFER_ENQUEUE`` holds until a transaction commits.

With ``TASKQ = {"DEFER_ENQUEUE": True}``, tasks enqueued inside ``transaction.atomic()`` (or
``ATOMIC_REQUESTS``) are sent by ``transaction.on_commit``. A ``TestCase`` (and pytest-django's
``django_db`` without ``transaction=True``) never commits, so those callbacks never run unless
captured: Django's ``captureOnCommitCallbacks`` (pytest-django's
``django_capture_on_commit_callbacks``) captures them, and :func:`deferred` says which taskq
enqueues they hold::

    with self.captureOnCommitCallbacks() as callbacks:
        self.client.post("/orders", ...)
    assert [e.name for e in deferred(callbacks)] == ["orders.tasks.charge_order"]
    run_deferred(callbacks)          # "commit": the tasks reach the broker

Importing this module does not import Django.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from .records import Enqueued


def _is_send(callback: Callable[[], object]) -> bool:
    from taskq_django.middleware import _send

    return getattr(callback, "func", None) is _send


def deferred(callbacks: Sequence[Callable[[], object]]) -> list[Enqueued]:
    """The taskq enqueues among captured ``on_commit`` callbacks, in order (not yet sent)."""
    out: list[Enqueued] = []
    for cb in callbacks:
        if _is_send(cb):
            items = cb.args[1]  # type: ignore[attr-defined]  # partial(_send, tq, items)
            out += [Enqueued.from_item(it) for it in items]
    return out


def run_deferred(callbacks: list[Callable[[], object]]) -> None:
    """Run the captured callbacks (all of them, as a commit would, in order) and empty the
    list, so running it twice sends nothing twice."""
    while callbacks:
        callbacks.pop(0)()


class CommitCapture:
    """The ``on_commit`` callbacks captured by :class:`OnCommit`."""

    def __init__(self, callbacks: list[Callable[[], object]]) -> None:
        self.callbacks = callbacks

    def enqueued(self) -> list[Enqueued]:
        """The taskq enqueues waiting for the commit."""
        return deferred(self.callbacks)

    def commit(self) -> None:
        """Run the captured callbacks, as the commit would: the held tasks are sent."""
        run_deferred(self.callbacks)


class OnCommit:
    """What the ``taskq_on_commit`` fixture gives: ``with taskq_on_commit() as held:`` captures
    the on-commit callbacks of the block (``execute=True``: runs them when it ends)."""

    def __init__(self, capture: Callable[..., AbstractContextManager[list[Any]]]) -> None:
        self._capture = capture

    @contextmanager
    def __call__(self, *, using: str = "default", execute: bool = False) -> Iterator[CommitCapture]:
        with self._capture(using=using, execute=False) as callbacks:
            held = CommitCapture(callbacks)
            yield held
        if execute:
            held.commit()
