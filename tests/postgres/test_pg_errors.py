"""Bad input and a database in the way, on the PostgreSQL broker: bad URLs, a missing or a
newer schema, ``taskq db migrate``, a statement timeout, a pool that no connection leaves
free, a server with no connection left. Each is a clear error, and nothing half-written."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from click.testing import CliRunner

from taskq_core import Settings, TaskQueue
from taskq_core.brokers.base import EnqueueItem
from taskq_core.brokers.postgres import SCHEMA_VERSION, SchemaError, migrate
from taskq_core.brokers.postgres.broker import PostgresBroker
from taskq_core.cli import main
from taskq_core.config import InvalidConfiguration
from taskq_core.errors import BrokerUnavailable
from tests.conftest import drop_namespace
from tests.postgres.server import PgServer

pytestmark = pytest.mark.postgres


def item(n: int) -> EnqueueItem:
    return EnqueueItem("default", f"t{n}", "job", b'{"n":1}')


@pytest.fixture
def schema(postgres_url: str) -> Iterator[str]:
    """A schema name of this test's own, dropped afterwards."""
    name = f"tq_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://127.0.0.1:x/db", "(?i)port"),
        ("postgresql://127.0.0.1:5432/", "names no database"),
        ("postgresql://127.0.0.1/db?schema=Bad-Name", "schema name"),
        ("postgresql://127.0.0.1/db?schema=1abc", "schema name"),
        ("postgres-ql://127.0.0.1/db", "broker_url must start with"),
    ],
)
def test_a_bad_url_is_refused_before_anything_is_written(url: str, says: str) -> None:
    with pytest.raises(InvalidConfiguration, match=says):
        TaskQueue.from_config(broker_url=url)


def test_a_password_never_reaches_the_error(schema: str) -> None:
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:1/db?schema={schema}"
    broker = PostgresBroker(url, connect_timeout=1)
    try:
        with pytest.raises(BrokerUnavailable) as caught:
            broker.enqueue([item(1)], 0)
        assert "s3cret-pw" not in str(caught.value)
        assert "s3cret-pw" not in repr(broker)
    finally:
        broker.close()


def test_a_missing_schema_says_run_taskq_db_migrate(postgres_url: str, schema: str) -> None:
    broker = PostgresBroker(f"{postgres_url}?schema={schema}")
    try:
        with pytest.raises(SchemaError, match="taskq db migrate"):
            broker.enqueue([item(1)], 0)
    finally:
        broker.close()


def test_a_newer_schema_is_refused(postgres_url: str, schema: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        migrate(conn, schema)
        conn.execute(f"UPDATE {schema}.meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(SchemaError, match="newer than this taskq"):
            migrate(conn, schema)  # a migration is never undone
    broker = PostgresBroker(f"{postgres_url}?schema={schema}")
    try:
        with pytest.raises(SchemaError, match="version 99, newer"):
            broker.enqueue([item(1)], 0)
    finally:
        broker.close()


def test_taskq_db_migrate_creates_then_finds_nothing_to_do(postgres_url: str, schema: str) -> None:
    env = {"TASKQ_BROKER_URL": f"{postgres_url}?schema={schema}"}
    runner = CliRunner()
    status = runner.invoke(main, ["db", "status"], env=env)
    assert status.exit_code == 1
    assert "installed none" in status.output
    first = runner.invoke(main, ["db", "migrate"], env=env)
    assert first.exit_code == 0, first.output
    assert f"version none -> {SCHEMA_VERSION}" in first.output
    again = runner.invoke(main, ["db", "migrate", "--json"], env=env)
    assert again.exit_code == 0
    assert f'"from": {SCHEMA_VERSION}' in again.output
    assert runner.invoke(main, ["db", "status"], env=env).exit_code == 0
    # and the broker works on it
    broker = PostgresBroker(env["TASKQ_BROKER_URL"])
    try:
        assert broker.enqueue([item(1)], 0) == ["t1"]
    finally:
        broker.close()


def test_taskq_db_on_another_broker_says_so() -> None:
    out = CliRunner().invoke(main, ["db", "migrate"], env={"TASKQ_BROKER_URL": "memory://"})
    assert out.exit_code != 0
    assert "PostgreSQL broker" in out.output


def test_two_migrations_at_once_apply_each_step_once(postgres_url: str, schema: str) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                migrate(conn, schema)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []


def test_a_statement_timeout_fails_clearly_and_writes_nothing(
    postgres_url: str, prefix: str
) -> None:
    broker = PostgresBroker(postgres_url, prefix=prefix, statement_timeout=0.3)
    try:
        with psycopg.connect(postgres_url) as app_conn:
            # the application holds a lock the enqueue needs, longer than the timeout
            app_conn.execute("LOCK TABLE taskq.tasks IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable, match="statement timeout"):
                broker.enqueue([item(1)], 0)
            assert time.monotonic() - started < 5
            app_conn.rollback()
        assert broker.get("default", "t1") is None
        assert broker.enqueue([item(1)], 0) == ["t1"]  # and it works again at once
    finally:
        broker.close()
        drop_namespace(postgres_url, prefix)


def test_a_pool_with_no_connection_free_fails_within_its_timeout(
    postgres_url: str, prefix: str
) -> None:
    broker = PostgresBroker(postgres_url, prefix=prefix, max_connections=1, connect_timeout=1)
    try:
        with broker.pool().connection():  # the application holds the only one
            started = time.monotonic()
            with pytest.raises(BrokerUnavailable, match="no connection of the pool"):
                broker.enqueue([item(1)], 0)
            assert time.monotonic() - started < 3
        assert broker.enqueue([item(1)], 0) == ["t1"]
    finally:
        broker.close()
        drop_namespace(postgres_url, prefix)


def test_a_server_out_of_connections_is_an_error_then_recovers(
    pg_server: PgServer, make_app: Callable[..., TaskQueue], prefix: str
) -> None:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        migrate(conn)
        limit = int(conn.execute("SHOW max_connections").fetchone()[0])  # type: ignore[index]
    hogs: list[psycopg.Connection] = []
    tq = TaskQueue(
        settings=Settings(broker_url=pg_server.url, key_prefix=prefix, broker={"socket_timeout": 1})
    )

    @tq.task(name="t.one")
    def one() -> int:
        return 1

    try:
        # the application takes every connection the server allows
        def take_them_all() -> None:
            for _ in range(limit + 1):
                hogs.append(psycopg.connect(pg_server.url, connect_timeout=2))

        with pytest.raises(psycopg.OperationalError):
            take_them_all()
        with pytest.raises(BrokerUnavailable):
            one.enqueue()
        for hog in hogs:
            hog.close()
        hogs.clear()
        # it recovers once psycopg_pool's next connection attempt succeeds: the pool backs
        # off between failed attempts (1 s, then 2, 4, ...), so within seconds, not at once
        deadline = time.monotonic() + 30
        while True:
            try:
                handle = one.enqueue()
                break
            except BrokerUnavailable:
                assert time.monotonic() < deadline, "the broker did not recover in 30 s"
                time.sleep(0.2)
        tq.worker(burst=True, handle_signals=False).run()
        assert handle.result(timeout=5) == 1
    finally:
        for hog in hogs:
            hog.close()
        tq.close()
