"""Smoke run of an example shop: a real server and a ``taskq worker`` as subprocesses.

The example shops (Starlette, FastAPI, aiohttp, Litestar, Falcon, Tornado, Quart, Sanic,
...) share one HTTP surface: ``POST /orders`` answers 202 with a ``task_id``,
``GET /orders/{task_id}`` shows its status and result, and taskq's routes sit under
``/tasks``. :func:`smoke` places an order over HTTP, lets the worker process run it, reads
the result and ``/tasks/health`` over HTTP, then stops both processes with SIGTERM and
checks they exit cleanly.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from taskq_core import TaskQueue
from tests.frameworks import BY_NAME

EXAMPLES = Path(__file__).resolve().parents[2] / "example_projects"
ADMIN_TOKEN = "smoke-admin-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A child process whose output goes to a file (a pipe nobody reads could fill up)."""

    def __init__(self, argv: Sequence[str], cwd: Path, env: dict[str, str]) -> None:
        # closed by process() when the child is done, not at the end of this method
        self.output = tempfile.TemporaryFile()  # noqa: SIM115
        # a session of its own: a server that kills its process group when stopped twice
        # (Sanic's manager does) must not take the test run with it
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        self.output.seek(0)
        return self.output.read().decode(errors="replace")

    def stop(self, name: str, *, shutdown_line: str | None = None) -> None:
        """SIGTERM, and the process must exit cleanly on its own.

        uvicorn re-raises the signal once its graceful shutdown is over (exit -15), so
        for it the proof is ``shutdown_line`` (its lifespan ended) rather than exit 0.
        """
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        output = self.text()
        if shutdown_line is None:
            assert code == 0, f"{name} exited {code}:\n{output}"
        else:
            assert code in (0, -signal.SIGTERM), f"{name} exited {code}:\n{output}"
            assert shutdown_line in output, output
        assert "Traceback" not in output, output


@contextmanager
def process(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> Iterator[Child]:
    """A child process, stopped with SIGTERM (then killed) if still running at the end."""
    child = Child(argv, cwd, env)
    try:
        yield child
    finally:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(30)
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait(10)
        child.output.close()


def shop_env(
    redis_url: str, prefix: str, *, embedded: bool = False, **extra: str
) -> dict[str, str]:
    """The environment of an example shop's processes: this test's Redis and prefix, the
    admin token, and a worker process of their own or an embedded one."""
    return {
        **os.environ,
        "TASKQ_BROKER_URL": redis_url,
        "TASKQ_KEY_PREFIX": prefix,
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
        "PYTHONUNBUFFERED": "1",
        "SHOP_EMBEDDED_WORKERS": "1" if embedded else "0",
        **extra,
    }


def wait_until_serving(client: httpx.Client, server: Child, timeout: float) -> None:
    """Until the server answers; fails with its output if it died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited {server.proc.returncode}:\n{server.text()}")
        try:
            client.get("/tasks/health")
            return
        except httpx.TransportError:
            time.sleep(0.1)  # the port is not open yet: nothing to wait on but time
    raise AssertionError(f"server did not answer within {timeout} s:\n{server.text()}")


def smoke(
    framework: str,
    server_argv: Sequence[str],
    tasks_module: str,
    *,
    redis_url: str,
    prefix: str,
    port: int,
    shutdown_line: str | None = None,
    embedded: bool = False,
    worker_argv: Sequence[str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    before_stop: Callable[[Child], None] | None = None,
) -> None:
    """Run ``framework``'s example (its directory: tests/frameworks.py) under ``server_argv``
    and a worker of ``tasks_module:tq``; see above.

    ``worker_argv`` replaces ``taskq worker --app tasks_module:tq`` (the Flask and Django
    examples run their framework's command); ``extra_env`` adds variables to both processes.
    ``before_stop(server)`` runs once everything was checked, just before the server is
    stopped (the Sanic test looks at its processes there).

    ``embedded=True`` runs no worker process: ``SHOP_EMBEDDED_WORKERS=1`` has the server's
    lifespan run one in its own loop, and stop it on SIGTERM.
    """
    if framework not in BY_NAME:
        raise AssertionError(f"{framework} is not in tests/frameworks.py: add its line there")
    cwd = EXAMPLES / BY_NAME[framework].example
    env = shop_env(redis_url, prefix, embedded=embedded, **(extra_env or {}))
    if worker_argv is None:
        worker_argv = [sys.executable, "-m", "taskq_core.cli", "worker"]
        worker_argv += ["--app", f"{tasks_module}:tq"]
    with ExitStack() as stack:
        client = stack.enter_context(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30))
        server = stack.enter_context(process(server_argv, cwd, env))
        worker = None if embedded else stack.enter_context(process(worker_argv, cwd, env))
        wait_until_serving(client, server, timeout=60)
        placed = client.post(
            "/orders",
            json={
                "email": "ada@example.com",
                "items": [{"sku": "tea", "qty": 2, "price_cents": 450}],
            },
            headers={"X-Request-ID": f"smoke-{framework}"},
        )
        assert placed.status_code == 202, placed.text
        assert placed.headers["x-request-id"] == f"smoke-{framework}"
        task_id = placed.json()["task_id"]

        # wait on Redis for the worker to finish it (an event, not a poll) ...
        tq = TaskQueue(redis_url, key_prefix=prefix)
        try:
            tq.handle(task_id, "high").result(timeout=60)
        finally:
            tq.close()
        # ... then read it over HTTP, from the app and from taskq's own routes
        status = client.get(f"/orders/{task_id}")
        assert status.status_code == 200, status.text
        body = status.json()
        assert body["status"] == "succeeded"
        assert body["result"]["total_cents"] == 900
        assert body["result"]["request_id"] == f"smoke-{framework}"

        health = client.get("/tasks/health")
        assert health.status_code == 200, health.text
        assert health.headers["content-type"].startswith("application/json")
        assert isinstance(health.json(), dict)

        # a task's result is private: the example's token opens it, nothing else does
        bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert client.get(f"/tasks/jobs/{task_id}").status_code == 401
        job = client.get(f"/tasks/jobs/{task_id}", headers=bearer)
        assert job.status_code == 200, job.text
        assert job.json()["result"]["total_cents"] == 900
        # admin routes: a JSON body with the token; a cross-site form is refused even so
        retry = client.post("/tasks/failed/high/retry", json={"all": True}, headers=bearer)
        assert retry.status_code == 200, retry.text
        assert retry.json() == {"queue": "high", "requested": 0, "retried": 0}
        forged = client.post(
            "/tasks/failed/high/retry",
            data={"all": "true"},
            headers={**bearer, "Origin": "https://evil.example"},
        )
        assert forged.status_code == 403, forged.text

        refused = client.post("/orders", json={"email": "ada@example.com", "items": []})
        assert refused.status_code in (400, 422)

        if before_stop is not None:
            before_stop(server)
        if worker is not None:
            worker.stop("worker")
        # with embedded=True nothing but the server's own worker could have run the task,
        # and a clean exit here means its lifespan stopped that worker
        server.stop("server", shutdown_line=shutdown_line)
