"""Unique tasks on PostgreSQL (schema version 2, ``sql/0002_unique.sql``): what the flow
contract's unique tests (run on this broker too) cannot show on one connection — many
producers at once, a key claimed inside an application's transaction, and a version-1
schema upgraded in place."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from importlib import resources

import psycopg
import pytest

from taskq_core import TaskQueue
from taskq_core.brokers.postgres import SCHEMA_VERSION, migrate
from taskq_core.brokers.postgres.schema import installed_version

pytestmark = pytest.mark.postgres


@pytest.fixture
def app(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    tq = make_app("postgres")

    @tq.task(name="u.rebuild", unique=True)
    def rebuild(index: str) -> str:
        return index

    return tq


def rows(postgres_url: str, prefix: str) -> int:
    with psycopg.connect(postgres_url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM taskq.tasks WHERE ns = %s AND task = 'u.rebuild'", (prefix,)
        ).fetchone()
    return int(found[0]) if found else 0


def test_many_producers_at_once_add_one_task_and_all_get_its_id(
    app: TaskQueue, postgres_url: str, prefix: str
) -> None:
    rebuild = app.registry["u.rebuild"]
    ids: list[str] = []
    start = threading.Barrier(8)

    def produce() -> None:
        start.wait()
        for _ in range(20):
            ids.append(rebuild.enqueue("products").id)

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(ids) == 160
    assert len(set(ids)) == 1  # one holder, whatever the interleaving
    assert rows(postgres_url, prefix) == 1


def test_a_key_claimed_in_an_open_transaction_holds_others_until_it_ends(
    app: TaskQueue, postgres_url: str, prefix: str
) -> None:
    """The second producer waits for the first's transaction: after a rollback it becomes
    the holder itself; after a commit it gets the committed task's id."""
    rebuild = app.registry["u.rebuild"]
    for outcome in ("rollback", "commit"):
        with psycopg.connect(postgres_url) as conn:
            with app.transaction(conn):
                mine = rebuild.enqueue(outcome)
            got: list[str] = []
            other = threading.Thread(target=lambda o=outcome: got.append(rebuild.enqueue(o).id))
            other.start()
            time.sleep(0.5)
            assert got == []  # waiting on the key's row lock, not answered wrong
            if outcome == "rollback":
                conn.rollback()
            else:
                conn.commit()
            other.join(10)
        (theirs,) = got
        if outcome == "rollback":
            assert theirs != mine.id  # the rolled-back task never held the key
            assert app.broker.get("default", mine.id) is None
        else:
            assert theirs == mine.id
    assert rows(postgres_url, prefix) == 2  # one per outcome


def test_a_finished_or_cancelled_holder_lets_go(app: TaskQueue) -> None:
    rebuild = app.registry["u.rebuild"]
    first = rebuild.enqueue("a")
    assert first.cancel()
    second = rebuild.enqueue("a")
    assert second.id != first.id
    app.worker(burst=True, handle_signals=False).run()
    assert second.result(timeout=5) == "a"
    third = rebuild.enqueue("a")
    assert third.id not in (first.id, second.id)


def test_a_version_1_schema_is_upgraded_in_place_keeping_its_tasks(postgres_url: str) -> None:
    schema = f"tq_up_{uuid.uuid4().hex[:8]}"
    v1 = resources.files("taskq_core.brokers.postgres").joinpath("sql/0001_init.sql").read_text()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        try:
            conn.execute(f"CREATE SCHEMA {schema}")
            conn.execute(v1.replace("{schema}", schema))
            conn.execute(f"INSERT INTO {schema}.meta VALUES ('schema_version', '1')")
            conn.execute(
                f"SELECT {schema}.enqueue('ns', 0, ARRAY['default'], ARRAY['old'], "
                "ARRAY['job'], ARRAY['\\x7b7d'::bytea], ARRAY[0::bigint], ARRAY[0::bigint], "
                "ARRAY[NULL::text], 1000)"
            )
            assert installed_version(conn, schema) == 1
            assert migrate(conn, schema) == (1, SCHEMA_VERSION)
            assert installed_version(conn, schema) == SCHEMA_VERSION == 5
            old = conn.execute(f"SELECT state FROM {schema}.tasks WHERE id = 'old'").fetchone()
            assert old == ("queued",)
            url = f"{postgres_url}?schema={schema}" if "?" not in postgres_url else postgres_url
            tq = TaskQueue(url, key_prefix="ns")

            @tq.task(name="job", unique=True)
            def job() -> None: ...

            try:
                assert job.enqueue().id == job.enqueue().id
            finally:
                tq.close()
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
