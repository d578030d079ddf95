"""The private PostgreSQL of the fault tests (tests/postgres/server.py): it answers, a
committed row outlives a crash, a restart keeps its port, a taken port is picked again
before the first start only, and close() leaves nothing behind."""

from __future__ import annotations

import os
import signal
import socket

import psycopg
import pytest

from tests.inthread import wait_for
from tests.postgres.server import PgServer, answers

pytestmark = pytest.mark.postgres


def _show(url: str, setting: str) -> str:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(f"SHOW {setting}").fetchone()
    assert row is not None
    return str(row[0])


def test_it_answers_with_the_settings_asked_for(pg_server: PgServer) -> None:
    assert answers(pg_server.url)
    assert pg_server.url == f"postgresql://postgres@127.0.0.1:{pg_server.port}/postgres"
    assert _show(pg_server.url, "listen_addresses") == "127.0.0.1"
    assert _show(pg_server.url, "unix_socket_directories") == str(pg_server.dir)
    # durable: the crash test below would prove nothing without these
    assert _show(pg_server.url, "fsync") == "on"
    assert _show(pg_server.url, "synchronous_commit") == "on"
    assert _show(pg_server.url, "shared_buffers") == "16MB"
    assert _show(pg_server.url, "max_connections") == "50"


def test_a_committed_row_survives_a_crash(pg_server: PgServer) -> None:
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE survivor (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO survivor VALUES (1, 'committed')")
    # a transaction open at the crash: it must not come back
    loser = psycopg.connect(pg_server.url)
    loser.execute("INSERT INTO survivor VALUES (2, 'in flight')")
    pid = pg_server.pid()
    log_before = pg_server.log.stat().st_size

    pg_server.kill()
    assert pg_server.pid() is None
    assert not answers(pg_server.url)
    with pytest.raises(psycopg.OperationalError):
        loser.execute("COMMIT")
    loser.close()

    pg_server.start()
    assert pg_server.pid() not in (None, pid)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        rows = conn.execute("SELECT id, note FROM survivor ORDER BY id").fetchall()
    assert rows == [(1, "committed")]
    with pg_server.log.open("rb") as log:
        log.seek(log_before)
        after = log.read().decode(errors="replace")
    assert "not properly shut down; automatic recovery in progress" in after


def test_a_postmaster_killed_alone_can_be_started_again(pg_server: PgServer) -> None:
    """SIGKILL to the postmaster only (by someone else than kill()): its children exit on
    their own and start() waits for them before it clears the dead one's lock files."""
    pid = pg_server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: pg_server.pid() is None, 10, "the postmaster to die")
    pg_server.start()
    assert pg_server.pid() not in (None, pid)
    assert answers(pg_server.url)


def test_a_restart_keeps_the_port_and_the_data(pg_server: PgServer) -> None:
    port, pid = pg_server.port, pg_server.pid()
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
    pg_server.restart()
    assert pg_server.port == port
    assert pg_server.pid() not in (None, pid)
    assert answers(pg_server.url)
    assert _show(pg_server.url, "port") == str(port)
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM kept").fetchone() == (0,)


def test_stop_then_start(pg_server: PgServer) -> None:
    pg_server.stop("immediate")
    assert pg_server.pid() is None
    assert not answers(pg_server.url)
    pg_server.stop()  # nothing to stop: no error
    pg_server.start()
    assert answers(pg_server.url)
    pg_server.start()  # already running: only waited for
    assert answers(pg_server.url)


def test_a_port_taken_before_the_first_start_is_picked_again() -> None:
    server = PgServer()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen()
        taken = server.port
        try:
            server.start()
            assert server.port != taken
            assert answers(server.url)
        finally:
            server.close()


def test_a_given_port_that_is_taken_fails_with_the_log() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = int(squatter.getsockname()[1])
        server = PgServer(port)
        try:
            with pytest.raises(pytest.fail.Exception, match="could not bind"):
                server.start()
            assert server.port == port
        finally:
            server.close()


def test_close_stops_it_and_removes_its_directory() -> None:
    server = PgServer()
    server.start()
    directory = server.dir
    assert directory is not None
    assert (directory / "data" / "PG_VERSION").exists()
    server.close()
    assert not directory.exists()
    assert server.dir is None
    assert not answers(server.url)
    server.close()  # twice: nothing to do


def test_close_after_a_crash() -> None:
    server = PgServer()
    with server:
        directory = server.dir
        server.kill()
    assert directory is not None
    assert not directory.exists()
