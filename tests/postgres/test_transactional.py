"""Transactional enqueue on the PostgreSQL broker: a task written in the application's own
transaction exists if and only if that transaction commits (docs/postgres.md)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import psycopg
import pytest

from taskq_core import TaskQueue
from taskq_core.errors import TaskqError
from tests.inthread import InThread

pytestmark = pytest.mark.postgres


def ready(tq: TaskQueue) -> int:
    return tq.broker.queue_info(["default"])[0].ready


@pytest.fixture
def app(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    tq = make_app("postgres")

    @tq.task(name="t.add")
    def add(a: int, b: int) -> int:
        return a + b

    return tq


def test_a_rolled_back_transaction_leaves_no_task_and_a_committed_one_always_does(
    app: TaskQueue, postgres_url: str
) -> None:
    add = app.registry["t.add"]
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TEMP TABLE orders (id int)")
        with app.transaction(conn):
            conn.execute("INSERT INTO orders VALUES (1)")
            gone = add.enqueue(1, 2)
        conn.rollback()
        assert app.broker.get("default", gone.id) is None
        assert ready(app) == 0
        # the same through the connection option, and committed this time
        conn.execute("CREATE TEMP TABLE orders (id int)")
        conn.execute("INSERT INTO orders VALUES (2)")
        kept = add.options(connection=conn).enqueue(2, 3)
        # not visible to anyone else before the commit
        assert app.broker.get("default", kept.id) is None
        conn.commit()
    state = app.broker.get("default", kept.id)
    assert state is not None
    assert state.state == "queued"
    app.worker(burst=True, handle_signals=False).run()
    assert kept.result(timeout=5) == 5


def test_an_exception_in_the_block_rolls_the_task_back(app: TaskQueue, postgres_url: str) -> None:
    add = app.registry["t.add"]
    handles = []

    def order_that_fails(conn: psycopg.Connection) -> None:
        with conn.transaction(), app.transaction(conn):
            handles.append(add.enqueue(1, 1))
            raise RuntimeError("the order failed")

    with psycopg.connect(postgres_url) as conn:
        with pytest.raises(RuntimeError):
            order_that_fails(conn)
        assert app.broker.get("default", handles[0].id) is None
        with conn.transaction(), app.transaction(conn):
            handle = add.enqueue(1, 1)
    assert app.broker.get("default", handle.id) is not None


async def test_an_async_connection_commits_and_rolls_back(
    app: TaskQueue, postgres_url: str
) -> None:
    add = app.registry["t.add"]
    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        with app.transaction(conn):
            dropped = await add.enqueue_async(1, 2)
        await conn.rollback()
        kept = await add.options(connection=conn).enqueue_async(3, 4)
        await conn.commit()
    assert await app.broker.get_async("default", dropped.id) is None
    assert await app.broker.get_async("default", kept.id) is not None


def test_a_sleeping_worker_wakes_at_the_commit_not_before(
    app: TaskQueue, postgres_url: str
) -> None:
    ran: list[float] = []

    @app.task(name="t.mark")
    def mark() -> None:
        ran.append(time.monotonic())

    worker = InThread(app)
    try:
        time.sleep(0.5)  # the worker is idle, listening
        with psycopg.connect(postgres_url) as conn:
            with app.transaction(conn):
                mark.enqueue()
            time.sleep(0.5)
            assert ran == []  # written, not committed: no worker sees it
            committed = time.monotonic()
            conn.commit()
        deadline = time.monotonic() + 5
        while not ran and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ran, "the committed task did not run"
        # woken by the NOTIFY sent at the commit, not by the idle poll
        assert ran[0] - committed < 0.5
    finally:
        worker.stop()


def test_a_transactional_enqueue_needs_the_postgres_broker_and_a_psycopg_connection(
    make_app: Callable[..., TaskQueue], app: TaskQueue, postgres_url: str
) -> None:
    memory = make_app("memory")
    with psycopg.connect(postgres_url) as conn, pytest.raises(TaskqError, match="PostgreSQL"):
        memory.transaction(conn).__enter__()
    with pytest.raises(TaskqError, match="psycopg 3 connection"):
        app.transaction(object()).__enter__()
    with pytest.raises(TaskqError, match="psycopg 3 connection"):
        app.registry["t.add"].options(connection="dsn").enqueue(1, 2)


def test_a_sqlalchemy_session_on_psycopg(app: TaskQueue, postgres_url: str) -> None:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    from sqlalchemy.orm import Session

    engine = sqlalchemy.create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://")
    )
    add = app.registry["t.add"]
    try:
        with Session(engine) as session:
            session.execute(sqlalchemy.text("SELECT 1"))
            with app.transaction(session):
                gone = add.enqueue(1, 2)
            session.rollback()
            with app.transaction(session):
                kept = add.enqueue(2, 2)
            session.commit()
    finally:
        engine.dispose()
    assert app.broker.get("default", gone.id) is None
    assert app.broker.get("default", kept.id) is not None


def test_the_worker_is_not_blocked_by_an_open_transaction(
    app: TaskQueue, postgres_url: str
) -> None:
    """A task written but not committed is invisible, and its row lock does not stop the
    worker from leasing the tasks around it (SKIP LOCKED)."""
    add = app.registry["t.add"]
    before = add.enqueue(1, 1)
    with psycopg.connect(postgres_url) as conn:
        with app.transaction(conn):
            hidden = add.enqueue(2, 2)
        after = add.enqueue(3, 3)
        app.worker(burst=True, handle_signals=False).run()
        assert before.result(timeout=5) == 2
        assert after.result(timeout=5) == 6
        assert app.broker.get("default", hidden.id) is None
        conn.commit()
    app.worker(burst=True, handle_signals=False).run()
    assert hidden.result(timeout=5) == 4
    asyncio.run(asyncio.sleep(0))
