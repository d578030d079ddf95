"""Django settings of the Django tests (and of the Django contract client), configured in
process with ``settings.configure`` rather than ``DJANGO_SETTINGS_MODULE``, so that no other
test folder is affected.

The database is PostgreSQL at ``TASKQ_TEST_POSTGRES`` (default: ``postgres@127.0.0.1:5432``,
trust authentication) under a name of this run's own, created and dropped by the ``database``
fixture; where no PostgreSQL answers, a SQLite file in a temporary folder.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from typing import Any

#: this run's database name
DB_NAME = f"taskq_test_{uuid.uuid4().hex[:10]}"


def postgres_params() -> dict[str, Any] | None:
    """Connection parameters of the test PostgreSQL server, or None if none answers."""
    try:
        import psycopg
    except ImportError:
        return None
    params: dict[str, Any] = {
        "host": os.environ.get("TASKQ_TEST_PG_HOST", "127.0.0.1"),
        "port": int(os.environ.get("TASKQ_TEST_PG_PORT", "5432")),
        "user": os.environ.get("TASKQ_TEST_PG_USER", "postgres"),
    }
    try:
        psycopg.connect(dbname="postgres", connect_timeout=2, **params).close()
    except psycopg.Error:
        return None
    return params


def database() -> dict[str, Any]:
    pg = postgres_params()
    if pg is not None:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DB_NAME,
            "HOST": pg["host"],
            "PORT": pg["port"],
            "USER": pg["user"],
            "CONN_MAX_AGE": 0,
        }
    folder = tempfile.mkdtemp(prefix="taskq-django-")
    return {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(folder, "test.sqlite3")}


def configure() -> None:
    """Configure Django once for this process and set it up."""
    import django
    from django.conf import settings

    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="taskq-tests-only",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "taskq_django",
            "tests.integrations.django.testapp",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "taskq_django.middleware.TaskqMiddleware",
        ],
        ROOT_URLCONF="tests.integrations.django.testapp.urls",
        DATABASES={"default": database()},
        USE_TZ=True,
        TASKQ={},
        # Django 6's tasks framework (ignored by Django 5.2, which has none)
        TASKS={"default": {"BACKEND": "taskq_django.backend.TaskqBackend"}},
        LOGGING_CONFIG=None,
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    )
    django.setup()
