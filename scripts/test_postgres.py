"""Find the PostgreSQL the test suite will use, or start the machine's; make sure it holds a
database ``taskq_test`` and print that database's URL on stdout.

Run by ``scripts/test`` with the project's virtual environment (so psycopg is there); it
needs neither ``psql`` nor ``pg_isready``:

- ``TASKQ_TEST_POSTGRES_URL`` set and answering: that server; nothing is started;
- else ``postgresql://postgres@127.0.0.1:5432/postgres`` if it answers (a variable that
  points nowhere falls back to it, saying so in one line on stderr);
- else the machine's packaged cluster is started (``pg_ctlcluster <version> main start``,
  from Debian's and Ubuntu's postgresql-common) and waited for, up to 20 s.

The tests get a database of their own on that server, ``taskq_test``: the URL printed is the
found one naming that database instead of its own, and the database is created when missing
(another run creating it at the same moment is no error). When no PostgreSQL can be had it
exits 1 with one line on stderr saying what to install or set. The URL goes to stdout only
(``scripts/test`` reads it): a password in it never reaches stderr, where a server is named
by host and port alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "taskq_test"
#: where postgresql-common keeps one directory per installed major version (``15/main``)
CLUSTERS = Path("/etc/postgresql")
#: how long a started cluster has to answer
WAIT = 20.0
HOW = (
    "install PostgreSQL (e.g. `apt-get install postgresql`, `brew install postgresql`) or point "
    "TASKQ_TEST_POSTGRES_URL at one (postgresql://user@host:port/db)"
)


def answers(url: str) -> bool:
    """Does a PostgreSQL answer ``SELECT 1`` at ``url``?

    Two seconds to connect is libpq's shortest ``connect_timeout``; a port where nothing
    listens is refused at once."""
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except (psycopg.Error, OSError, ValueError):
        return False


def where(url: str) -> str:
    """``host:port`` of ``url``, for messages: the URL itself may hold a password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error:
        return "an unparsable URL"
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}"


def with_database(url: str, name: str = DATABASE) -> str:
    """``url`` naming database ``name`` instead of its own; user, password, host, port and
    options are kept. A ``key=value`` connection string stays one."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        return make_conninfo(url, dbname=name)
    query = parts.query
    pairs = parse_qsl(query, keep_blank_values=True)
    if any(key == "dbname" for key, _ in pairs):  # it would win over the path
        query = urlencode([(key, value) for key, value in pairs if key != "dbname"])
    # by hand: urlunsplit() drops the empty host of postgresql:///db?host=/socket/dir
    base = f"{parts.scheme}://{parts.netloc}/{quote(name, safe='')}"
    return f"{base}?{query}" if query else base


def _versions() -> list[str]:
    """The major versions with a ``main`` cluster under /etc/postgresql, newest first."""
    if not CLUSTERS.is_dir():
        return []
    found = [p.name for p in CLUSTERS.iterdir() if (p / "main").is_dir()]
    return sorted(found, key=lambda v: [int(n) for n in v.split(".") if n.isdigit()], reverse=True)


def find(default_url: str = DEFAULT_URL) -> str:
    """The URL of a PostgreSQL that answers; raises SystemExit with one line when there is none.

    ``default_url`` is where a PostgreSQL is looked for, and waited for once the machine's
    cluster is started, without a variable that answers (the tests pass a server of their
    own, or a dead port). pg_ctlcluster starts the cluster on the port of its own
    configuration: the machine's cluster is only of use when that is ``default_url``'s."""
    given = os.environ.get("TASKQ_TEST_POSTGRES_URL")
    if given:
        if answers(given):
            return given
        print(
            f"test: TASKQ_TEST_POSTGRES_URL is set but no PostgreSQL answers at {where(given)}; "
            f"trying {where(default_url)}",
            file=sys.stderr,
        )
    if answers(default_url):
        return default_url
    at = where(default_url)
    ctl = shutil.which("pg_ctlcluster")
    versions = _versions()
    if ctl is None or not versions:
        missing = "pg_ctlcluster is not on PATH" if ctl is None else f"{CLUSTERS} has no cluster"
        raise SystemExit(f"test: no PostgreSQL answers on {at} and {missing}: " + HOW)
    why = ""
    for version in versions:
        command = f"pg_ctlcluster {version} main start"
        print(f"test: no PostgreSQL on {at}, running {command}", file=sys.stderr)
        try:
            # pg_ctlcluster from PATH, fixed arguments
            done = subprocess.run(  # noqa: S603
                [ctl, "--skip-systemctl-redirect", version, "main", "start"],
                capture_output=True,
                text=True,
                check=False,
                timeout=WAIT + 10,
            )
        except subprocess.TimeoutExpired:
            why = f"{command} did not return within {WAIT + 10:.0f} s"
            continue
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            why = f"{command}: {lines[-1] if lines else f'exit status {done.returncode}'}"
            continue
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if answers(default_url):
                return default_url
            time.sleep(0.2)
        why = f"cluster {version}/main started but did not answer there within {WAIT:g} s"
    raise SystemExit(f"test: no PostgreSQL answers on {at} ({why}): " + HOW)


def _reason(exc: psycopg.Error) -> str:
    """The server's own words for ``exc`` (never the URL), else the error's kind."""
    return exc.diag.message_primary or type(exc).__name__


def ensure_database(url: str, name: str = DATABASE) -> str:
    """The URL of database ``name`` on ``url``'s server, created when missing.

    It is looked up before it is created: a role that may not create databases can still
    use one made for it. Another run creating it between the look and the create is the
    race of two ``scripts/test`` at once, and harmless: its error is taken as done."""
    try:
        with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if found is None:
                # created by another run meanwhile: the second of two inserts into
                # pg_database is a unique violation (or, later, a duplicate database)
                with contextlib.suppress(errors.UniqueViolation, errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise SystemExit(
            f"test: could not make database {name} on {where(url)}: {_reason(exc)}"
        ) from None
    target = with_database(url, name)
    if not answers(target):
        raise SystemExit(f"test: database {name} on {where(url)} does not answer")
    return target


if __name__ == "__main__":
    print(ensure_database(find()))
