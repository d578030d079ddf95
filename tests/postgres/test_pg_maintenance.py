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
