"""taskq's PostgreSQL schema (version 1), created by ``manage.py migrate``: see
``taskq_django/pg_schema.py``."""

from __future__ import annotations

from django.db import migrations

from taskq_django.pg_schema import create_schema


class Migration(migrations.Migration):
    initial = True
    operations = [migrations.RunPython(create_schema, migrations.RunPython.noop, elidable=False)]
