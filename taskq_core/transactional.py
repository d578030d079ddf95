"""Transactional enqueue on the PostgreSQL broker: a task written in the application's own
database transaction exists if and only if that transaction commits (docs/postgres.md,
"Transactional enqueue").

``with tq.transaction(conn): ...`` makes every enqueue of ``tq`` in the block (this thread or
asyncio task) go through ``conn``; ``task.options(connection=conn).enqueue(...)`` does it for
one call. ``conn`` is a psycopg 3 connection (blocking or async), a SQLAlchemy ``Session`` or
``Connection`` on the psycopg driver, or a Django connection (``django.db.connection``).
taskq_django does it by itself inside ``transaction.atomic()`` (``TaskqConfig``).

Not ``task.enqueue(..., connection=conn)``: an enqueue's keyword arguments are the task's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .errors import TaskqError

if TYPE_CHECKING:
    from .app import TaskQueue

#: (the application, the connection) of the innermost ``tq.transaction(...)`` block
_current: ContextVar[tuple[TaskQueue, Any] | None] = ContextVar("taskq_transaction", default=None)


def check_broker(app: TaskQueue) -> None:
    if not getattr(app.broker, "transactional", False):
        raise TaskqError(
            "a transactional enqueue needs the PostgreSQL broker (a postgresql:// "
            f"broker_url); this app's broker is {type(app.broker).__name__}"
        )


@contextlib.contextmanager
def transaction(app: TaskQueue, connection: Any) -> Iterator[None]:
    """Every enqueue of ``app`` in this block goes through ``connection``."""
    check_broker(app)
    driver(connection)  # a connection taskq cannot use is refused here, not at an enqueue
    token = _current.set((app, connection))
    try:
        yield
    finally:
        _current.reset(token)


def connection_for(app: TaskQueue, given: Any = None) -> Any:
    """The psycopg connection an enqueue of ``app`` writes through: ``given`` (the
    ``connection`` option), the innermost ``tq.transaction`` block's, the application's
    hook (taskq_django: the default database's, inside ``atomic()``), or None (the broker's
    own pool, a transaction of its own)."""
    if given is not None:
        check_broker(app)
        return driver(given)
    found = _current.get()
    if found is not None and found[0] is app:
        return driver(found[1])
    hook = app.transaction_hook
    if hook is not None:
        hooked = hook()
        if hooked is not None:
            return driver(hooked)
    return None


def driver(connection: Any) -> Any:
    """The psycopg 3 connection behind ``connection``; a clear error for anything else."""
    import psycopg

    raw = connection
    if hasattr(raw, "ensure_connection") and hasattr(raw, "in_atomic_block"):
        raw.ensure_connection()  # Django's DatabaseWrapper: its psycopg connection
        raw = raw.connection
    elif callable(getattr(raw, "connection", None)) and hasattr(raw, "flush"):
        raw = raw.connection()  # a SQLAlchemy Session: its Connection in this transaction
    raw = getattr(getattr(raw, "connection", None), "driver_connection", raw)  # SQLAlchemy
    if isinstance(raw, psycopg.Connection | psycopg.AsyncConnection):
        return raw
    raise TaskqError(
        "a transactional enqueue needs a psycopg 3 connection (or a SQLAlchemy session or "
        "connection on the psycopg driver, or a Django connection using psycopg 3); got "
        f"{type(connection).__name__}"
    )
