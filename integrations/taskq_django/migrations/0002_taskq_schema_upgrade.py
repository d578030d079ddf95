"""taskq's PostgreSQL schema upgraded to version 3 (2: unique tasks; 3: settle as sets), by
``manage.py migrate``: see ``taskq_django/pg_schema.py``."""

from __future__ import annotations

from django.db import migrations

from taskq_django.pg_schema import create_schema


class Migration(migrations.Migration):
    dependencies = [("taskq", "0001_taskq_schema")]
    operations = [migrations.RunPython(create_schema, migrations.RunPython.noop, elidable=False)]
