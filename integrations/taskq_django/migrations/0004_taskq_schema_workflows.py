"""taskq's PostgreSQL schema upgraded to version 5 (workflows), by ``manage.py migrate``: see
``taskq_django/pg_schema.py``."""

from __future__ import annotations

from django.db import migrations

from taskq_django.pg_schema import create_schema


class Migration(migrations.Migration):
    dependencies = [("taskq", "0003_taskq_schema_flow")]
    operations = [migrations.RunPython(create_schema, migrations.RunPython.noop, elidable=False)]
