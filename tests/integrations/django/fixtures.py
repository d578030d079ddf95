"""Fixtures of the Django tests (made available by conftest.py when Django is installed).
Django is configured here, for this folder only (see djsettings.py); the ``database``
fixture creates this run's database and drops it afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integrations.django.djsettings import DB_NAME, configure, postgres_params

configure()

from django.test import Client, override_settings  # noqa: E402

from taskq_core import TaskQueue  # noqa: E402
from taskq_core.context import current_trace  # noqa: E402

#: what tasks saw, for the tests to read (filled in the worker's threads)
SEEN: dict[str, Any] = {}


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """This run's database, migrated; dropped at the end of the session."""
    from django.core.management import call_command
    from django.db import connections

    pg = postgres_params()
    if pg is not None:
        import psycopg

        with psycopg.connect(dbname="postgres", autocommit=True, **pg) as admin:
            admin.execute(f'CREATE DATABASE "{DB_NAME}"')
    try:
        call_command("migrate", run_syncdb=True, verbosity=0)
        yield connections["default"].vendor
    finally:
        connections.close_all()
        if pg is not None:
            with psycopg.connect(dbname="postgres", autocommit=True, **pg) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


@pytest.fixture
def db(database: str) -> Iterator[str]:
    """The database, emptied after the test (tests commit for real: on_commit must fire)."""
    from tests.integrations.django.testapp.models import Order

    yield database
    Order.objects.all().delete()


def register(tq: TaskQueue) -> None:
    """The tasks the test app's views enqueue."""

    @tq.task(name="t.trace")
    def trace() -> dict[str, str] | None:
        return current_trace()

    @tq.task(name="t.pay")
    def pay(order_id: int) -> bool:
        from django.db import connections

        from tests.integrations.django.testapp.models import Order

        order = Order.objects.get(id=order_id)
        order.paid = True
        order.save()
        wrapper = connections["default"]  # this thread's own connection wrapper
        SEEN["connection"] = wrapper
        SEEN["open_inside"] = wrapper.connection is not None
        return True


@pytest.fixture
def configure_taskq(make_app: Callable[..., TaskQueue]) -> Iterator[Callable[..., TaskQueue]]:
    """``configure_taskq(tq_options, **TASKQ keys)``: a TaskQueue on this test's prefix
    (built with ``tq_options``) with the test tasks, set as ``TASKQ["APP"]`` with the keys
    given, until the end of the test."""
    overrides: list[override_settings] = []

    def configure_(tq_options: dict[str, Any] | None = None, **keys: Any) -> TaskQueue:
        tq = make_app("redis", **(tq_options or {}))
        register(tq)
        o = override_settings(TASKQ={"APP": tq, **keys})
        o.enable()
        overrides.append(o)
        return tq

    yield configure_
    import taskq_django

    taskq_django.stop_workers()
    for o in reversed(overrides):
        o.disable()
    SEEN.clear()


@pytest.fixture
def client() -> Client:
    return Client(raise_request_exception=False)
