"""A PostgreSQL server of the test's own, for fault tests: initdb'd into a temporary
directory, on a free loopback port, started and stopped with pg_ctl, and crashable.

The machine's server (127.0.0.1:5432, ``scripts/test_postgres.py``) is shared and must not
be stopped or killed; this one is. Its settings keep it small (``shared_buffers=16MB``,
``max_connections=50``) but durable: ``fsync`` and ``synchronous_commit`` stay on, because
the crash tests mean "a committed row survives", which a server that may lose its last
commits would not prove. Only initdb skips its fsyncs (``--no-sync``): the files it writes
are not what the tests are about.

PostgreSQL refuses to run as root. As root the programs are run as the ``postgres`` OS user
(``runuser``), and the directory, made in the system's temporary directory (pytest's
``tmp_path`` is private to root), is given to that user.

::

    server = PgServer()          # a free loopback port
    server.start()               # initdb (once), pg_ctl start, SELECT 1 answers
    url = server.url             # postgresql://postgres@127.0.0.1:<port>/postgres
    server.kill()                # a crash: the next start() runs crash recovery
    server.start()
    server.restart()             # a clean stop and start, on the same port
    server.close()               # stopped, its directory removed

Linux only (the crash finds the postmaster's children in /proc).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import psycopg
import pytest

#: the OS user the server runs as when the tests run as root (initdb and postgres refuse root)
OS_USER = "postgres"
#: how long a start or stop may take before the test fails with the server's log
TIMEOUT = 30.0
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "max_connections": "50",
    "shared_buffers": "16MB",
    # durable on purpose (the module's docstring says why)
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    # the log goes to pg_ctl's -l file, read on failure
    "logging_collector": "off",
}


def free_port() -> int:
    """A loopback port free now (only until someone else's socket takes it: see ``repick``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(url: str) -> bool:
    """Does the server at ``url`` answer ``SELECT 1`` (two seconds, libpq's least, to connect)?"""
    try:
        with psycopg.connect(url, connect_timeout=2, autocommit=True) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def _bindir() -> Path:
    """The directory of PostgreSQL's server programs: initdb's on PATH (symlinks followed, so
    pg_ctl and postgres are of the same version), else the newest of Debian's
    /usr/lib/postgresql/<version>/bin, which is off PATH."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent
    versions = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: [int(n) for n in p.parent.name.split(".") if n.isdigit()],
    )
    if not versions:
        pytest.fail("PostgreSQL's initdb is not installed (e.g. apt-get install postgresql)")
    return versions[-1]


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """The argv prefix that runs a program as the server's user, and that user when it is
    not us: as root, ``runuser -u postgres --`` (or ``su``'s form when runuser is missing)."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(OS_USER)
    except KeyError:
        pytest.fail(f"the tests run as root and there is no {OS_USER!r} OS user to run PostgreSQL")
    runuser = shutil.which("runuser")
    if runuser is not None:
        return [runuser, "-u", OS_USER, "--"], user
    su = shutil.which("su")
    if su is None:
        pytest.fail("the tests run as root and neither runuser nor su is there to drop it")
    # su takes one command line: _run() joins the program's arguments into it
    return [su, "-s", "/bin/sh", OS_USER, "-c"], user


def _state(pid: int) -> str | None:
    """The state letter of process ``pid`` (``Z``: a zombie), None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]  # the command name, in parentheses, may hold spaces


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class PgServer:
    """One PostgreSQL with its own data directory, on ``127.0.0.1:<port>``."""

    def __init__(self, port: int | None = None) -> None:
        self.bindir = _bindir()
        self._prefix, self._user = _run_as()
        #: picks another port when this one was taken before the server bound it (a port
        #: found free is free only until someone else's connection takes it); None once the
        #: server has started, or when the port was given: others were told it
        self.repick: Callable[[], int] | None = free_port if port is None else None
        self.port = port or free_port()
        #: the temporary directory (made by the first start()): data/, the log, the socket
        self.dir: Path | None = None

    # -- where things are

    @property
    def url(self) -> str:
        """The URL of database ``postgres`` as superuser ``postgres`` (trust: no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        """The data directory (PGDATA)."""
        return self._dir() / "data"

    @property
    def log(self) -> Path:
        """pg_ctl's log file: the server's output, all starts appended."""
        return self._dir() / "log"

    def _dir(self) -> Path:
        if self.dir is None:
            raise RuntimeError("the server was never started (or was closed)")
        return self.dir

    def pid(self) -> int | None:
        """The postmaster's process id, None when no postmaster runs."""
        if self.dir is None:
            return None
        try:
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if _state(pid) not in (None, "Z") else None

    # -- life cycle

    def start(self) -> None:
        """Start the server (initdb first, the first time) and return once ``SELECT 1``
        answers on its port; the test fails with the server's log when it does not. A
        server already running is only waited for (a test can make sure of it either way)."""
        if self.dir is None:
            self._initdb()
        elif self._running_answers():
            return
        self._clear_stale_locks()  # of a postmaster killed by someone else, say
        for _ in range(5):
            self._configure()
            seen = self.log.stat().st_size if self.log.exists() else 0
            done = self._run("pg_ctl", "start", "-w", "-t", str(int(TIMEOUT)), "-l", str(self.log))
            if done.returncode == 0:
                self._wait_answers()
                self.repick = None  # started: clients know the port from now on
                return
            with self.log.open("rb") as log:
                log.seek(seen)
                output = log.read().decode(errors="replace")
            if self.repick is None or "could not bind" not in output:
                break
            self.port = self.repick()  # taken before the server bound it: another port
        pytest.fail(
            f"PostgreSQL on port {self.port} did not start:\n{done.stdout}{done.stderr}"
            f"{self._tail()}"
        )

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m <mode>`` (smart, fast or immediate), waiting until the server is
        gone; nothing to do when it does not run."""
        if self.pid() is None:
            return
        done = self._run("pg_ctl", "stop", "-w", "-t", str(int(TIMEOUT)), "-m", mode)
        if done.returncode != 0:
            pytest.fail(
                f"PostgreSQL on port {self.port} did not stop ({mode}):\n"
                f"{done.stdout}{done.stderr}{self._tail()}"
            )

    def kill(self) -> None:
        """Crash the server: SIGKILL to the postmaster and all its children at once, as a power
        cut leaves them. Nothing is flushed or cleaned up; the data directory stays and the
        next start() runs crash recovery, replaying what was committed (its WAL was fsynced).

        The postmaster is stopped (SIGSTOP) first, so that no child it forks escapes the
        list. Its children are killed too: left alone they would notice its death and exit
        on their own, a moment later."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
        for p in [pid, *_children(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        self._clear_stale_locks()

    def restart(self) -> None:
        """A clean stop (fast) and a start, on the same port and data directory."""
        self.stop("fast")
        self.start()

    def close(self) -> None:
        """Stop the server (killed if it will not stop) and remove its directory."""
        if self.dir is None:
            return
        try:
            self.stop("fast")
        finally:
            self.kill()  # nothing left when stop worked; the crash when it did not
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
            atexit.unregister(self.close)

    def __enter__(self) -> PgServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the work

    def _initdb(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="taskq-pg-"))
        # a server left running by a test process that died would run on for good
        atexit.register(self.close)
        self._own(self.dir)
        done = self._run(
            "initdb",
            *("-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"),
        )
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout}{done.stderr}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# the test's own settings (tests/postgres/server.py)\n")
            conf.write("include 'taskq.conf'\n")

    def _configure(self) -> None:
        """Write the settings, the port among them (it may have been repicked)."""
        settings = {
            **SETTINGS,
            "port": str(self.port),
            # a short path (sockets have a 107-byte limit), nobody else's directory
            "unix_socket_directories": str(self._dir()),
        }
        conf = self.data / "taskq.conf"
        conf.write_text(
            "".join(f"{k} = '{v.replace(chr(39), chr(39) * 2)}'\n" for k, v in settings.items())
        )
        self._own(conf)

    def _clear_stale_locks(self) -> None:
        """Wait until no process of a dead postmaster is left, then remove its lock files.

        Its parent is init, which reaps it when it will; until then its pid is still there
        (a zombie), and the lock files naming it (postmaster.pid, the socket's) keep the next
        postmaster out ("lock file already exists"). They may go only once none of its
        children runs either (those exit on their own when it dies, or were killed): a
        postmaster started beside them, told nothing by a lock file, would share the data
        directory with them. They are found by their working directory, the data directory,
        since as orphans their parent is init."""
        deadline = time.monotonic() + TIMEOUT
        while running := self._processes():
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL's processes {running} outlived their postmaster")
            time.sleep(0.02)
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        for lock in self._dir().glob(".s.PGSQL.*.lock"):
            lock.unlink(missing_ok=True)

    def _processes(self) -> list[int]:
        """The live (not zombie) processes working in the data directory: the server's."""
        data = self.data.resolve()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cwd = (entry / "cwd").resolve(strict=True)
            except OSError:  # gone, a zombie, or not ours to see
                continue
            if cwd == data and _state(int(entry.name)) not in (None, "Z"):
                found.append(int(entry.name))
        return found

    def _running_answers(self) -> bool:
        """True once a running postmaster answers; False when none runs, or it dies while
        waited for (killed just before, its signal not yet taken)."""
        deadline = time.monotonic() + TIMEOUT
        while self.pid() is not None:
            if answers(self.url):
                return True
            if time.monotonic() > deadline:
                pytest.fail(
                    f"PostgreSQL on port {self.port} runs but does not answer:\n{self._tail()}"
                )
            time.sleep(0.05)
        return False

    def _wait_answers(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not answers(self.url):
            if time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL on port {self.port} does not answer:\n{self._tail()}")
            time.sleep(0.05)

    def argv(self, program: str, *args: str) -> list[str]:
        """The command line that runs ``program`` (initdb, pg_ctl) of the server's version on
        its data directory, as the server's user: for tests that must start or stop it from
        elsewhere (a stand-in for pg_ctlcluster)."""
        argv = [str(self.bindir / program), "-D", str(self.data), *args]
        if self._prefix and self._prefix[-1] == "-c":  # su: one command line
            argv = [shlex.join(argv)]
        return [*self._prefix, *argv]

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        # the server's programs, fixed arguments; the cwd is one the server's user may enter
        return subprocess.run(
            self.argv(program, *args),
            cwd=self._dir(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT + 30,
            check=False,
        )

    def _own(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def _tail(self) -> str:
        try:
            return "\n" + self.log.read_text(errors="replace")[-3000:]
        except (FileNotFoundError, RuntimeError):
            return ""
