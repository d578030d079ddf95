"""The CLI, the health report and the HTTP routes, unchanged on the PostgreSQL broker."""

from __future__ import annotations

import json
from collections.abc import Callable

import orjson
import pytest
from click.testing import CliRunner

from taskq_core import TaskQueue
from taskq_core.cli import main
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable
from taskq_core.observability import health

pytestmark = pytest.mark.postgres


@pytest.fixture
def tq(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    app = make_app("postgres", retry={"max_retries": 0})

    @app.task(name="s.ok")
    def ok(n: int) -> int:
        return n * 2

    @app.task(name="s.boom")
    def boom() -> None:
        raise ValueError("boom")

    return app


def route(tq: TaskQueue, path: str) -> tuple[int, dict[str, object]]:
    out = RouteTable(tq, auth=lambda request: True).dispatch(Request("GET", path, {}, {}, b""))
    return out.status, orjson.loads(out.body)


def test_health_reports_the_database_and_the_pool(tq: TaskQueue) -> None:
    report = health.check(tq)
    broker = report["components"]["broker"]
    assert broker["kind"] == "postgres"
    assert broker["version"]
    # degraded only for what the server does (its autovacuum may be off on a test machine)
    assert broker["status"] in ("healthy", "degraded"), broker
    assert all("autovacuum" in w for w in broker["warnings"]), broker
    assert broker["rtt_ms"] >= 0
    assert set(broker["pool"]) == {"pool_size", "pool_available", "requests_waiting"}
    assert health.ready(tq)["status"] == "ready"


def test_status_failed_and_inspect_on_the_cli(
    tq: TaskQueue, prefix: str, postgres_url: str
) -> None:
    done = tq.registry["s.ok"].enqueue(21)
    failed = tq.registry["s.boom"].enqueue()
    tq.worker(burst=True, handle_signals=False).run()
    assert done.result(timeout=5) == 42
    env = {"TASKQ_BROKER_URL": postgres_url, "TASKQ_KEY_PREFIX": prefix}
    runner = CliRunner()
    status = runner.invoke(main, ["status", "--json"], env=env)
    assert status.exit_code in (0, 1), status.output  # 1: no worker alive now
    queues = {q["name"]: q for q in json.loads(status.output)["queues"]}
    assert queues["default"]["dead"] == 1
    assert queues["default"]["succeeded"] == 1
    listed = runner.invoke(main, ["failed", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert failed.id in listed.output
    inspected = runner.invoke(main, ["inspect", done.id, "--json"], env=env)
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.output)["status"] == "succeeded"
    retried = runner.invoke(main, ["failed", "retry", failed.id], env=env)
    assert retried.exit_code == 0, retried.output
    assert failed.status() == "queued"


def test_the_routes_answer(tq: TaskQueue) -> None:
    handle = tq.registry["s.ok"].enqueue(1)
    tq.worker(burst=True, handle_signals=False).run()
    status, body = route(tq, f"/jobs/{handle.id}")
    assert status == 200
    assert body["status"] == "succeeded"
    status, body = route(tq, "/metrics/queues")
    assert status == 200
    status, body = route(tq, "/health")
    assert status == 200
    assert body["components"]["broker"]["kind"] == "postgres"  # type: ignore[index]
