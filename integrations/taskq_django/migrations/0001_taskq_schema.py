"""taskq's PostgreSQL schema, created or upgraded by ``manage.py migrate`` when the taskq
broker is PostgreSQL on the database this migration runs on (``taskq db migrate`` does the
same outside Django). Elsewhere (SQLite, Redis broker, another database) it does nothing.
Running ``taskq db migrate`` after a taskq upgrade stays needed: this migration runs once."""

from __future__ import annotations

from typing import Any

from django.db import migrations


def create_schema(apps: Any, schema_editor: Any) -> None:
    conn = schema_editor.connection
    if conn.vendor != "postgresql":
        return
    from taskq_core.errors import TaskqError
    from taskq_django.conf import get_taskqueue
    from taskq_django.transactional import broker_database, database_of

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


class Migration(migrations.Migration):
    initial = True
    operations = [migrations.RunPython(create_schema, migrations.RunPython.noop, elidable=False)]
