"""Transactional enqueue in Django (PostgreSQL broker): an enqueue inside
``transaction.atomic()`` is written through Django's connection, so the task commits or
rolls back with the rows it belongs to (docs/postgres.md, "Transactional enqueue").

Only when the broker's database is the one Django's default connection uses (same host,
port and database name); otherwise the task is sent on the broker's own connection, and
``TASKQ['DEFER_ENQUEUE']`` holds it until the commit as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taskq_core import TaskQueue


def database_of(host: Any, port: Any, name: Any) -> tuple[str, str, str]:
    """One spelling of a database's address (an empty host and port: the local defaults)."""
    host = str(host or "localhost")
    if host in ("127.0.0.1", "::1"):
        host = "localhost"
    return host, str(port or 5432), str(name or "")


def broker_database(tq: TaskQueue) -> tuple[str, str, str] | None:
    """The database of ``tq``'s PostgreSQL broker, None for another broker."""
    if not getattr(tq.broker, "transactional", False):
        return None
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(getattr(tq.broker, "conninfo", ""))
    return database_of(info.get("host"), info.get("port"), info.get("dbname"))


def hook_for(tq: TaskQueue) -> Callable[[], Any] | None:
    """The connection hook of ``tq`` (None when its broker is not PostgreSQL)."""
    target = broker_database(tq)
    if target is None:
        return None

    def default_connection() -> Any:
        from django.db import connection

        if connection.vendor != "postgresql" or not connection.in_atomic_block:
            return None
        s = connection.settings_dict
        if database_of(s.get("HOST"), s.get("PORT"), s.get("NAME")) != target:
            return None
        return connection

    return default_connection


def install(tq: TaskQueue) -> None:
    if tq.transaction_hook is None:
        tq.transaction_hook = hook_for(tq)
