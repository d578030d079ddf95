"""Litestar: TaskqPlugin adds the routes, the middleware and the embedded workers' lifespan."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("litestar")

from litestar import Litestar, Request, Response, post
from litestar.exceptions import HTTPException
from litestar.testing import AsyncTestClient, TestClient

from taskq_core import MissingExtra, TaskQueue
from taskq_core.context import current_trace
from taskq_litestar import TaskqPlugin
from tests.integrations.leaks import embedded_tasks, leftover_threads, taskq_threads


def shop(tq: TaskQueue, *plugins: TaskqPlugin) -> Litestar:
    """An app whose handler enqueues ``echo`` then answers with the status it is told."""

    @tq.task(name="echo")
    async def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    @post("/orders/{kind:str}")
    async def order(request: Request[Any, Any, Any]) -> Response[Any]:
        # parameters read off the request: the test runs on any Litestar 2.x without
        # tripping the deprecation of inferred parameters (warnings are errors here)
        q = {k: int(v) for k, v in request.query_params.items()}
        n, status, fail = q.get("n", 1), q.get("status", 201), q.get("fail", 0)
        handle = await echo.enqueue_async(n)
        if fail == 1:
            raise RuntimeError("handler blew up")
        if fail:
            raise HTTPException(status_code=fail, detail="refused")
        return Response({"task_id": handle.id}, status_code=status)

    return Litestar(route_handlers=[order], plugins=list(plugins or [TaskqPlugin(tq)]))


def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with TestClient(shop(tq)) as client:
        response = client.post("/orders/a", headers={"X-Request-ID": "lite-1"})
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "lite-1"
    tq.worker(burst=True, handle_signals=False).run()
    result = tq.handle(response.json()["task_id"]).result(5)
    assert result["trace"] == {"correlation_id": "lite-1"}


@pytest.mark.parametrize("query", ["status=500", "status=422", "fail=409", "fail=1"])
def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], query: str
) -> None:
    tq = make_app()
    app = shop(tq, TaskqPlugin(tq, defer=True))
    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.post(f"/orders/a?{query}")
        ok = client.post("/orders/b")
    assert failed.status_code >= 400
    assert tq.handle(ok.json()["task_id"]).status() == "queued"
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]
    assert tq.broker.read_counters("routes") == {"/orders/{kind}": 2}


def test_plugin_serves_the_routes_under_its_prefix(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with TestClient(shop(tq, TaskqPlugin(tq, prefix="/ops/tasks"))) as client:
        health = client.get("/ops/tasks/health")
        missing = client.get("/ops/tasks/no-such-route")
        wrong = client.delete("/ops/tasks/health")
        schema = client.get("/schema/openapi.json").json()
    assert health.status_code in (200, 503)
    assert isinstance(health.json(), dict)
    assert missing.status_code == 404
    assert wrong.status_code == 405
    assert not any(path.startswith("/ops") for path in schema["paths"])


async def test_embedded_workers_start_with_the_app_and_stop_with_it(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    plugin = TaskqPlugin(tq, embedded_workers=2)
    app = shop(tq, plugin)
    async with AsyncTestClient(app) as client:
        assert len(plugin.workers) == 2
        task_id = (await client.post("/orders/a?n=6")).json()["task_id"]
        # an embedded worker, not this test, runs it
        assert (await tq.handle(task_id).result_async(20))["n"] == 6
    assert plugin.workers == []
    assert embedded_tasks() == []
    assert leftover_threads(before) == []
    await tq.aclose()


def test_the_plugin_installed_twice_is_harmless(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    first = TaskqPlugin(tq, defer=True, embedded_workers=1)
    second = TaskqPlugin(tq, defer=True, embedded_workers=1)
    app = shop(tq, first, second)
    with TestClient(app) as client:
        assert len(first.workers) == 1
        assert second.workers == []
        response = client.post("/orders/a", headers={"X-Request-ID": "twice"})
        assert response.headers.get_list("x-request-id") == ["twice"]
        assert tq.handle(response.json()["task_id"]).result(20)["n"] == 1
    assert tq.broker.read_counters("routes") == {"/orders/{kind}": 1}


def test_missing_litestar_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litestar", None)
    for name in [
        m for m in sys.modules if m == "taskq_litestar" or m.startswith("taskq_litestar.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[litestar\]'"):
        importlib.import_module("taskq_litestar")
