"""Transactional enqueue in Django with the PostgreSQL broker on Django's own database: an
enqueue inside ``transaction.atomic()`` commits or rolls back with the ORM's rows, with no
``on_commit`` (docs/postgres.md, "Transactional enqueue"); and the taskq_django migration
that creates the schema."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings

from taskq_core import TaskQueue
from taskq_core.brokers.postgres import SCHEMA_VERSION, migrate
from taskq_core.brokers.postgres.schema import installed_version
from tests.conftest import drop_namespace
from tests.integrations.django.djsettings import DB_NAME, postgres_params
from tests.integrations.django.fixtures import register

pytestmark = pytest.mark.postgres


def django_db_url(schema: str = "taskq") -> str:
    pg = postgres_params()
    assert pg is not None
    return f"postgresql://{pg['user']}@{pg['host']}:{pg['port']}/{DB_NAME}?schema={schema}"


@pytest.fixture
def pg_db(db: str) -> str:
    if db != "postgresql":
        pytest.skip("Django's test database is SQLite here (no PostgreSQL answered)")
    return db


@pytest.fixture
def tq(pg_db: str, make_app: Callable[..., TaskQueue], prefix: str) -> Iterator[TaskQueue]:
    url = django_db_url()
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        migrate(conn)
    app = TaskQueue(url, key_prefix=prefix)
    register(app)
    with override_settings(TASKQ={"APP": app}):
        from taskq_django.conf import get_taskqueue

        assert get_taskqueue() is app  # installs the transaction hook
        yield app
    app.close()
    drop_namespace(url.split("?")[0], prefix)


def test_an_enqueue_in_atomic_rolls_back_and_commits_with_the_orm(tq: TaskQueue) -> None:
    from tests.integrations.django.testapp.models import Order

    handles = []

    def order_that_fails() -> None:
        with transaction.atomic():
            order = Order.objects.create(email="a@example.com")
            handles.append(tq.enqueue("t.pay", [order.id]))
            raise RuntimeError("payment refused")

    with pytest.raises(RuntimeError):
        order_that_fails()
    assert not Order.objects.exists()
    assert tq.broker.get("default", handles[0].id) is None

    with transaction.atomic():
        order = Order.objects.create(email="b@example.com")
        kept = tq.enqueue("t.pay", [order.id])
        # written in Django's transaction: the broker's own connections do not see it yet
        assert tq.broker.get("default", kept.id) is None
        with transaction.atomic():  # a savepoint: the task follows the outer commit
            inner = tq.enqueue("t.pay", [order.id])
    assert tq.broker.get("default", kept.id) is not None
    assert tq.broker.get("default", inner.id) is not None
    tq.worker(burst=True, handle_signals=False).run()
    assert kept.result(timeout=5) is True
    order.refresh_from_db()
    assert order.paid


def test_outside_atomic_an_enqueue_is_sent_at_once(tq: TaskQueue) -> None:
    handle = tq.enqueue("t.pay", [1])
    assert tq.broker.get("default", handle.id) is not None


def test_the_taskq_django_migration_creates_the_schema(pg_db: str) -> None:
    schema = f"tq_dj_{uuid.uuid4().hex[:8]}"
    url = django_db_url(schema)
    try:
        with override_settings(TASKQ={"BROKER_URL": url, "KEY_PREFIX": "mig"}):
            call_command("migrate", "taskq", "zero", verbosity=0)
            call_command("migrate", "taskq", verbosity=0)
        with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
            assert installed_version(conn, schema) == SCHEMA_VERSION
    finally:
        with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
