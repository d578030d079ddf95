"""taskq's PostgreSQL schema from Django's migrations (``migrations/0001_taskq_schema.py``
and later): created or upgraded by ``manage.py migrate`` when the taskq broker is PostgreSQL
on the database a migration runs on (``taskq db migrate`` does the same outside Django).
Elsewhere (SQLite, Redis broker, another database) it does nothing. Each taskq release
that changes the schema ships a Django migration calling this again, so ``manage.py
migrate`` keeps it current."""

from __future__ import annotations

from typing import Any


def create_schema(apps: Any, schema_editor: Any) -> None:
    """A ``RunPython`` operation: ``taskq db migrate`` on the migration's connection, when
    that is the broker's database."""
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return
    from taskq_core.errors import TaskqError

    from .conf import get_taskqueue
    from .transactional import broker_database, database_of

    try:
        tq = get_taskqueue()
    except TaskqError:  # taskq is not configured (yet): nothing to create
        return
    target = broker_database(tq)
    s = conn.settings_dict
    if target is None or database_of(s.get("HOST"), s.get("PORT"), s.get("NAME")) != target:
        return
    from taskq_core.brokers.postgres import migrate

    conn.ensure_connection()
    migrate(conn.connection, tq.broker.schema)  # type: ignore[attr-defined]
