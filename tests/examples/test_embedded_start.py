"""Embedded workers start when each serving process starts, before any request.

The Flask and Django example shops under real servers with ``SHOP_EMBEDDED_WORKERS=1``: no
request is ever sent; the workers' heartbeats in Redis (``read_workers``, what ``/workers``
shows) tell which processes run one. Under ``gunicorn -w 2`` both worker processes do and
the master never does (``--preload`` or not); under ``flask run`` / ``runserver`` with the
autoreloader only the reloader's child does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from taskq_core import TaskQueue
from taskq_core.observability.heartbeat import read_workers
from tests.examples.shop_smoke import EXAMPLES, free_port

pytest.importorskip("gunicorn")


def _worker_pids(
    tq: TaskQueue, server: subprocess.Popen[bytes], want: int, timeout: float = 60.0
) -> set[int]:
    """The pids with a live worker heartbeat, once ``want`` of them show (or the timeout)."""
    deadline = time.monotonic() + timeout
    pids: set[int] = set()
    while time.monotonic() < deadline and server.poll() is None:
        pids = {int(r["pid"]) for r in read_workers(tq)}
        if len(pids) >= want:
            return pids
        time.sleep(0.2)  # heartbeats land in Redis: nothing to wait on but time
    return pids


def _run(
    example: str, argv: Sequence[str], redis_url: str, prefix: str, want: int, tmp: Path
) -> tuple[set[int], int, str]:
    """Start the server, read which pids run workers, stop it; (pids, server pid, output)."""
    env = {
        **os.environ,
        "TASKQ_BROKER_URL": redis_url,
        "TASKQ_KEY_PREFIX": prefix,
        "SHOP_EMBEDDED_WORKERS": "1",
        "SHOP_DB": str(tmp / "shop.sqlite3"),
        "PYTHONUNBUFFERED": "1",
    }
    log = tmp / "server.log"
    tq = TaskQueue(redis_url, key_prefix=prefix)
    with log.open("wb") as out:
        # a session of its own: the autoreloaders' children are stopped with their parent
        server = subprocess.Popen(
            list(argv), cwd=EXAMPLES / example, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            pids = _worker_pids(tq, server, want)
            # no more than `want` come later (a master or reloader parent starting late)
            time.sleep(1.5)
            pids |= {int(r["pid"]) for r in read_workers(tq)}
        finally:
            tq.close()
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)
    return pids, server.pid, log.read_text(errors="replace")


def _gunicorn(app: str, port: int, preload: bool) -> list[str]:
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2"]
    return [*argv, *(["--preload"] if preload else []), app]


@pytest.mark.slow
@pytest.mark.parametrize("preload", [False, True], ids=["lazy", "preload"])
@pytest.mark.parametrize(
    ("example", "app"), [("flask", "flask_shop.app:app"), ("django", "djshop.wsgi")]
)
def test_each_gunicorn_worker_runs_embedded_workers_before_any_request(
    redis_url: str, prefix: str, example: str, app: str, preload: bool, tmp_path: Path
) -> None:
    pytest.importorskip(example)
    argv = _gunicorn(app, free_port(), preload)
    pids, master, output = _run(example, argv, redis_url, prefix, 2, tmp_path)
    assert len(pids) == 2, output
    assert master not in pids, output  # never in the master, even when it loaded the app
    assert "Traceback" not in output, output
    assert "stopped 1 embedded worker(s)" in output, output  # each worker stopped its own


@pytest.mark.slow
def test_flask_run_starts_them_in_the_reloaders_child_only(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    pytest.importorskip("flask")
    argv = [sys.executable, "-m", "flask", "--app", "flask_shop.app", "run", "--reload"]
    argv += ["--port", str(free_port())]
    pids, parent, output = _run("flask", argv, redis_url, prefix, 1, tmp_path)
    assert len(pids) == 1, output
    assert parent not in pids, output


@pytest.mark.slow
def test_runserver_starts_them_in_the_reloaders_child_only(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    pytest.importorskip("django")
    argv = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{free_port()}"]
    pids, parent, output = _run("django", argv, redis_url, prefix, 1, tmp_path)
    assert len(pids) == 1, output
    assert parent not in pids, output
