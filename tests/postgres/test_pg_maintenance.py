"""Where the server runs with autovacuum off, the workers vacuum the tables tasks pass
through themselves (brokers/postgres/maintenance.py), and health says autovacuum is off."""

from __future__ import annotations

import time

import psycopg
import pytest

from taskq_core import Settings, TaskQueue
from taskq_core.brokers.postgres import maintenance, migrate
from taskq_core.observability import health
from tests.conftest import drop_namespace
from tests.inthread import InThread
from tests.postgres.server import PgServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def vacuums(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables "
            "WHERE schemaname = 'taskq' AND relname = 'tasks'"
        ).fetchone()
        return int(row[0]) if row else 0


def test_with_autovacuum_off_a_worker_vacuums(
    pg_server: PgServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.url
    with psycopg.connect(url, autocommit=True) as conn:
        migrate(conn)
        conn.execute("ALTER SYSTEM SET autovacuum = off")
        conn.execute("SELECT pg_reload_conf()")
    monkeypatch.setattr(maintenance, "EVERY", 0.5)
    tq = TaskQueue(
        settings=Settings(
            broker_url=url, key_prefix=prefix, worker={"renew_interval": 0.2, "lease_seconds": 2}
        )
    )

    @tq.task(name="m.noop")
    def noop() -> None:
        return None

    worker: InThread | None = None
    try:
        before = vacuums(url)
        worker = InThread(tq)
        for _ in range(5):
            tq.enqueue_many([noop.call() for _ in range(200)])
            time.sleep(0.3)
        deadline = time.monotonic() + 15
        while vacuums(url) <= before and time.monotonic() < deadline:
            time.sleep(0.2)
        assert vacuums(url) > before, "no worker vacuumed the tasks table"
        broker = health.check(tq)["components"]["broker"]
        assert broker["autovacuum"] is False
        assert any("autovacuum is off" in w for w in broker["warnings"])
    finally:
        if worker is not None:
            worker.stop()
        tq.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET autovacuum")
            conn.execute("SELECT pg_reload_conf()")
        drop_namespace(url, prefix)


async def test_the_vacuum_runs_without_the_statement_timeout_then_gets_it_back(
    postgres_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement timeout is sized for the broker's calls (0.8 of socket_timeout); the
    vacuum of a large backlog may take longer, and a timeout used to mark it refused for
    good (no vacuum ever again, on a server without autovacuum). It runs with none, and
    the connection gets its own back."""
    from psycopg import AsyncConnection

    from taskq_core.brokers.postgres.broker import PostgresBroker

    seen: list[tuple[str, str]] = []
    execute = AsyncConnection.execute

    async def recording(self: AsyncConnection, query: str, *args: object, **kw: object) -> object:
        if "VACUUM" in str(query):
            cur = await execute(self, "SHOW statement_timeout")
            row = await cur.fetchone()
            seen.append((str(query), str(row[0]) if row else ""))
        return await execute(self, query, *args, **kw)  # type: ignore[call-overload]

    monkeypatch.setattr(AsyncConnection, "execute", recording)
    broker = PostgresBroker(postgres_url, prefix=prefix, statement_timeout=5.0)
    try:
        job = maintenance.Maintenance()
        job.autovacuum = False  # as on a server without autovacuum, whatever this one's
        before = vacuums(postgres_url)
        await job.tick(broker)
        assert not job.refused
        assert vacuums(postgres_url) > before
        assert [timeout for _, timeout in seen] == ["0"]  # none while it vacuums
        pool = await broker.apool()
        async with pool.connection() as conn:
            cur = await execute(conn, "SHOW statement_timeout")
            assert await cur.fetchone() == ("5s",)  # and its own afterwards
    finally:
        await broker.aclose()
        broker.close()
        drop_namespace(postgres_url, prefix)
