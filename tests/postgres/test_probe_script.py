"""The test command's PostgreSQL probe (scripts/test_postgres.py): it honours
TASKQ_TEST_POSTGRES_URL, falls back to 127.0.0.1:5432 when the variable points nowhere,
prints the URL of a database ``taskq_test`` that it made sure exists, needs no psql, and
never shows a password on stderr.

The servers it is pointed at are private ones (tests/postgres/server.py), so that dropping
``taskq_test`` here cannot disturb the machine's server, and the start of a cluster is tried
with a stand-in ``pg_ctlcluster`` that starts a private one: the machine's is shared and is
never stopped. The one test of the real default (127.0.0.1:5432) leaves it as scripts/test
would (``taskq_test`` made there when missing)."""

from __future__ import annotations

import configparser
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from psycopg import sql

from tests import scripts_probe
from tests.postgres.server import PgServer, free_port

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent.parent
PROBE = ROOT / "scripts" / "test_postgres.py"


def _module() -> ModuleType:
    return scripts_probe.load(PROBE, "taskq_test_postgres_probe")


def _probe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return scripts_probe.run(PROBE, env, timeout=60)


def _bare_env(**extra: str) -> dict[str, str]:
    """No psql, no pg_ctlcluster: PATH holds only this Python's directory; no PG* variable
    of the developer's steers libpq."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKQ_", "PG"))}
    env["PATH"] = str(Path(sys.executable).parent)
    env.update(extra)
    return env


def _drop(url: str, name: str = "taskq_test") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def _exists(url: str, name: str = "taskq_test") -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _dead_url(password: str = "") -> str:
    auth = f"postgres:{password}" if password else "postgres"
    return f"postgresql://{auth}@127.0.0.1:{free_port()}/postgres"


def test_the_variable_is_honoured_and_taskq_test_is_made(pg_server: PgServer) -> None:
    _drop(pg_server.url)
    env = _bare_env(TASKQ_TEST_POSTGRES_URL=pg_server.url)
    done = _probe(env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"postgresql://postgres@127.0.0.1:{pg_server.port}/taskq_test"
    assert done.stderr == ""
    probe = _module()
    assert probe.answers(done.stdout.strip())
    with psycopg.connect(done.stdout.strip()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("taskq_test",)
    # a second run finds it there
    again = _probe(env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == done.stdout


def test_a_dead_variable_falls_back_to_the_default_without_its_password(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASKQ_TEST_POSTGRES_URL", _dead_url("s3cret-pw"))
    assert _module().find(pg_server.url) == pg_server.url
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "TASKQ_TEST_POSTGRES_URL is set but no PostgreSQL answers at 127.0.0.1:" in lines[0]
    assert f"trying 127.0.0.1:{pg_server.port}" in lines[0]
    assert "s3cret-pw" not in err


def test_a_dead_variable_falls_back_to_127_0_0_1_5432() -> None:
    """The script itself, against the machine's server: it only reads there (taskq_test is
    left as it is found, made if missing, as scripts/test makes it)."""
    probe = _module()
    if not probe.answers(probe.DEFAULT_URL):
        pytest.skip("no PostgreSQL answers on 127.0.0.1:5432 (the script would start one)")
    done = _probe(_bare_env(TASKQ_TEST_POSTGRES_URL=_dead_url("s3cret-pw")))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "postgresql://postgres@127.0.0.1:5432/taskq_test"
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "s3cret-pw" not in done.stderr
    assert probe.answers(done.stdout.strip())


def test_no_server_and_no_pg_ctlcluster_is_one_line_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKQ_TEST_POSTGRES_URL", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    with pytest.raises(SystemExit) as exc:
        _module().find(_dead_url())
    message = str(exc.value.code)
    assert "\n" not in message
    assert "pg_ctlcluster is not on PATH" in message
    assert "TASKQ_TEST_POSTGRES_URL" in message
    assert "install PostgreSQL" in message


def _stand_in(directory: Path, body: str) -> Path:
    """A ``pg_ctlcluster`` in ``directory`` (put on PATH) that notes its arguments in
    ``directory/args`` and runs ``body``, and a /etc/postgresql look-alike with a cluster
    15/main there: the machine's own cluster is shared and must not be stopped to try this."""
    bindir = directory / "bin"
    bindir.mkdir()
    script = bindir / "pg_ctlcluster"
    script.write_text(f'#!/bin/sh\necho "$@" > {shlex.quote(str(directory / "args"))}\n{body}\n')
    script.chmod(0o755)
    (directory / "etc" / "15" / "main").mkdir(parents=True)
    return bindir


def test_with_nothing_answering_it_starts_the_cluster_and_waits(
    pg_server: PgServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = _module()
    pg_server.stop()
    # started without waiting (-W): the probe's own wait is what is tried
    start = shlex.join(pg_server.argv("pg_ctl", "start", "-W", "-l", str(pg_server.log)))
    bindir = _stand_in(tmp_path, start)
    monkeypatch.delenv("TASKQ_TEST_POSTGRES_URL", raising=False)
    monkeypatch.setenv("PATH", f"{bindir}:{Path(sys.executable).parent}")
    monkeypatch.setattr(probe, "CLUSTERS", tmp_path / "etc")
    try:
        assert probe.find(pg_server.url) == pg_server.url
        args = (tmp_path / "args").read_text().split()
        assert args == ["--skip-systemctl-redirect", "15", "main", "start"]
    finally:
        pg_server.start()  # waits for it, or starts it when the stand-in did not
    assert pg_server.pid() is not None


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (
            "echo 'Cluster is already running.' >&2; exit 2",
            "main start: Cluster is already running.",
        ),
        ("exit 0", "cluster 15/main started but did not answer there within 0.5 s"),
    ],
)
def test_a_cluster_that_does_not_come_up_is_one_line(
    body: str, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = _module()
    monkeypatch.delenv("TASKQ_TEST_POSTGRES_URL", raising=False)
    monkeypatch.setenv("PATH", f"{_stand_in(tmp_path, body)}:{Path(sys.executable).parent}")
    monkeypatch.setattr(probe, "CLUSTERS", tmp_path / "etc")
    monkeypatch.setattr(probe, "WAIT", 0.5)
    with pytest.raises(SystemExit) as exc:
        probe.find(_dead_url())
    message = str(exc.value.code)
    assert "\n" not in message
    assert why in message
    assert "install PostgreSQL" in message


def test_runs_racing_to_make_the_database_all_get_it(pg_server: PgServer) -> None:
    """Two scripts/test at once both find taskq_test missing and both create it: the one
    that loses the race takes the other's database, it does not fail."""
    _drop(pg_server.url)
    probe = _module()
    barrier = threading.Barrier(4)
    results: list[str] = []
    failures: list[BaseException] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(probe.ensure_database(pg_server.url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert results == [probe.with_database(pg_server.url)] * 4
    assert _exists(pg_server.url)


def test_a_role_that_may_not_create_databases_uses_the_one_there(pg_server: PgServer) -> None:
    probe = _module()
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS taskq_plain")
        conn.execute("CREATE ROLE taskq_plain LOGIN NOCREATEDB")
    plain = pg_server.url.replace("postgres@", "taskq_plain@")
    _drop(pg_server.url)
    with pytest.raises(SystemExit) as exc:
        probe.ensure_database(plain)
    assert "could not make database taskq_test" in str(exc.value.code)
    assert "permission denied" in str(exc.value.code)
    probe.ensure_database(pg_server.url)  # made by someone who may
    assert probe.ensure_database(plain) == probe.with_database(plain)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://u:pw@db.example:6543/app?sslmode=disable",
            "postgresql://u:pw@db.example:6543/taskq_test?sslmode=disable",
        ),
        (
            "postgres://h/app?dbname=other&sslmode=require",
            "postgres://h/taskq_test?sslmode=require",
        ),
        ("postgresql://h", "postgresql://h/taskq_test"),
        (
            "postgresql:///app?host=/var/run/postgresql",
            "postgresql:///taskq_test?host=/var/run/postgresql",
        ),
        ("host=h port=1 dbname=app", "dbname=taskq_test host=h port=1"),
    ],
)
def test_the_url_printed_names_taskq_test(url: str, expected: str) -> None:
    assert _module().with_database(url) == expected


def test_messages_name_the_server_not_the_password() -> None:
    probe = _module()
    assert probe.where("postgresql://u:s3cret@db.example:6543/app") == "db.example:6543"
    assert probe.where("postgresql://u@db.example/app?password=s3cret") == "db.example:5432"
    assert probe.where("host=h password=s3cret") == "h:5432"


def test_the_test_command_and_tox_pass_the_url_on() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    assert 'TASKQ_TEST_POSTGRES_URL="$($py scripts/test_postgres.py)" || exit 1' in script
    assert "export TASKQ_TEST_POSTGRES_URL" in script
    tox = configparser.ConfigParser()
    tox.read(ROOT / "tox.ini")
    passenv = [name.strip() for name in tox["testenv"]["passenv"].split(",")]
    assert "TASKQ_TEST_POSTGRES_URL" in passenv
