"""taskq's PostgreSQL schema upgraded to version 4 (rate limits, concurrency caps and expiry),
by ``manage.py migrate``: see ``taskq_django/pg_schema.py``."""

from __future__ import annotations

from django.db import migrations

from taskq_django.pg_schema import create_schema


class Migration(migrations.Migration):
    dependencies = [("taskq", "0002_taskq_schema_upgrade")]
    operations = [migrations.RunPython(create_schema, migrations.RunPython.noop, elidable=False)]
