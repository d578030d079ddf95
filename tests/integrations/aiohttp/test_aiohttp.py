"""aiohttp: the sub-application, its cleanup_ctx with embedded workers, and the middleware."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import taskq_aiohttp
from taskq_core import MissingExtra, TaskQueue
from taskq_core.context import current_trace
from taskq_core.embedded import EmbeddedWorkers
from tests.integrations.leaks import embedded_tasks, leftover_threads, taskq_threads


def shop(
    tq: TaskQueue, *, defer: bool = False, layers: int = 1, workers: int = 0
) -> web.Application:
    """An app whose handlers enqueue ``echo`` then answer, raise or redirect as told."""

    @tq.task(name="echo")
    async def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    async def order(request: web.Request) -> web.StreamResponse:
        handle = await echo.enqueue_async(int(request.query.get("n", "1")))
        how = request.query.get("then", "ok")
        if how == "raise":
            raise RuntimeError("handler blew up")
        if how == "bad":
            raise web.HTTPBadRequest(text="refused")
        if how == "redirect":
            raise web.HTTPSeeOther(f"/done/{handle.id}")
        return web.json_response(
            {"task_id": handle.id}, status=int(request.query.get("status", "200"))
        )

    app = web.Application(middlewares=[taskq_aiohttp.middleware(tq, defer=defer)] * layers)
    app.router.add_post("/orders/{kind}", order)
    app.add_subapp("/tasks", taskq_aiohttp.create_app(tq, embedded_workers=workers))
    return app


async def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    async with TestClient(TestServer(shop(tq))) as client:
        response = await client.post("/orders/a", headers={"X-Request-ID": "aio-1"})
        body = await response.json()
    assert response.headers["X-Request-ID"] == "aio-1"
    await tq.worker(burst=True, handle_signals=False).async_run()
    result = await tq.handle(body["task_id"]).result_async(5)
    assert result["trace"] == {"correlation_id": "aio-1"}
    await tq.aclose()


@pytest.mark.parametrize("then", ["status=500", "status=404", "then=bad", "then=raise"])
async def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], then: str
) -> None:
    tq = make_app()
    async with TestClient(TestServer(shop(tq, defer=True))) as client:
        failed = await client.post(f"/orders/a?{then}")
        ok = await client.post("/orders/b")
        task_id = (await ok.json())["task_id"]
    assert failed.status >= 400
    assert ok.status == 200
    assert await tq.handle(task_id).status_async() == "queued"
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]
    await tq.aclose()


async def test_a_raised_redirect_counts_as_success(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    async with TestClient(TestServer(shop(tq, defer=True))) as client:
        response = await client.post("/orders/a?then=redirect", allow_redirects=False)
    assert response.status == 303
    assert response.headers["X-Request-ID"]
    task_id = response.headers["Location"].rsplit("/", 1)[1]
    assert await tq.handle(task_id).status_async() == "queued"
    await tq.aclose()


async def test_enqueues_are_counted_per_route(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    async with TestClient(TestServer(shop(tq))) as client:
        for kind in ("a", "b"):
            await client.post(f"/orders/{kind}")
        await client.get("/tasks/health")
    assert tq.broker.read_counters("routes") == {"/orders/{kind}": 2}
    await tq.aclose()


async def test_subapp_state_uses_typed_keys_and_serves_the_routes(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    sub = taskq_aiohttp.create_app(tq)
    assert sub[taskq_aiohttp.TASKQ] is tq
    assert isinstance(sub[taskq_aiohttp.EMBEDDED], EmbeddedWorkers)
    app = web.Application()
    app.add_subapp("/tasks", sub)
    async with TestClient(TestServer(app)) as client:
        health = await client.get("/tasks/health")
        missing = await client.get("/tasks/no-such-route")
        assert health.status in (200, 503)
        assert isinstance(await health.json(), dict)
        assert missing.status == 404


async def test_embedded_workers_start_with_the_app_and_stop_with_it(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    app = shop(tq, workers=2)
    async with TestClient(TestServer(app)) as client:
        assert embedded_tasks() == ["taskq-embedded-0", "taskq-embedded-1"]
        body = await (await client.post("/orders/a?n=4")).json()
        # an embedded worker, not this test, runs it
        assert (await tq.handle(body["task_id"]).result_async(20))["n"] == 4
    assert embedded_tasks() == []
    assert leftover_threads(before) == []


async def test_installed_twice_is_harmless(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    app = shop(tq, defer=True, layers=2, workers=1)
    # a second sub-application of the same TaskQueue, with its own embedded worker
    app.add_subapp("/tasks-again", taskq_aiohttp.create_app(tq, embedded_workers=1))
    async with TestClient(TestServer(app)) as client:
        assert embedded_tasks() == ["taskq-embedded-0"]
        response = await client.post("/orders/a", headers={"X-Request-ID": "twice"})
        body = await response.json()
        assert response.headers.getall("X-Request-ID") == ["twice"]
        assert (await tq.handle(body["task_id"]).result_async(20))["n"] == 1
    assert embedded_tasks() == []
    assert tq.broker.read_counters("routes") == {"/orders/{kind}": 1}


def test_missing_aiohttp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp.web", None)
    for name in [m for m in sys.modules if m == "taskq_aiohttp" or m.startswith("taskq_aiohttp.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[aiohttp\]'"):
        importlib.import_module("taskq_aiohttp")
