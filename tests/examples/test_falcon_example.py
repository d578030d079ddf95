"""The Falcon example shop: the WSGI app under gunicorn, the ASGI app under uvicorn, each with
a taskq worker process or an embedded worker; and under ``gunicorn -w 2``, an embedded worker
in each gunicorn worker process before any request."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

pytest.importorskip("falcon")
pytest.importorskip("httpx")

from taskq_core import TaskQueue
from taskq_core.observability.heartbeat import decode_records
from tests.examples.shop_smoke import ADMIN_TOKEN, EXAMPLES, free_port, process, smoke


def gunicorn(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "-c", "python:falcon_shop.gunicorn_conf",
        "falcon_shop.wsgi:app",
    ]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_falcon_wsgi_example_under_gunicorn(redis_url: str, prefix: str, embedded: bool) -> None:
    pytest.importorskip("gunicorn")
    port = free_port()
    smoke(
        "falcon",
        gunicorn(port, 1),
        "falcon_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
        # the worker_exit hook stops the embedded worker thread when gunicorn's worker exits
        shutdown_line="stopped 1 embedded worker(s)" if embedded else None,
    )


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_falcon_asgi_example_under_uvicorn(redis_url: str, prefix: str, embedded: bool) -> None:
    pytest.importorskip("uvicorn")
    port = free_port()
    server = [sys.executable, "-m", "uvicorn", "falcon_shop.asgi:app", "--port", str(port)]
    smoke(
        "falcon",
        server,
        "falcon_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
        shutdown_line="Application shutdown complete",
    )


@pytest.mark.slow
def test_each_gunicorn_worker_runs_its_embedded_worker_before_any_request(
    redis_url: str, prefix: str
) -> None:
    pytest.importorskip("gunicorn")
    env = {
        **os.environ,
        "TASKQ_BROKER_URL": redis_url,
        "TASKQ_KEY_PREFIX": prefix,
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHOP_EMBEDDED_WORKERS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    tq = TaskQueue(redis_url, key_prefix=prefix)
    try:
        with process(gunicorn(free_port(), 2), EXAMPLES / "falcon", env) as server:
            # no HTTP request at all: the heartbeats alone show who runs a worker
            deadline = time.monotonic() + 60
            pids: set[int] = set()
            while len(pids) < 2 and time.monotonic() < deadline:
                assert server.proc.poll() is None, server.text()
                pids = {int(r["pid"]) for r in decode_records(tq.broker.heartbeats())}
                time.sleep(0.2)  # other processes' state in Redis: nothing to wait on
            assert len(pids) == 2, server.text()
            assert server.proc.pid not in pids  # the master runs none
            server.proc.send_signal(signal.SIGTERM)
            assert server.proc.wait(30) == 0, server.text()
            # each gunicorn worker stopped its embedded worker (which drops its heartbeat)
            assert server.text().count("stopped 1 embedded worker(s)") == 2, server.text()
        assert decode_records(tq.broker.heartbeats()) == []
    finally:
        tq.close()
