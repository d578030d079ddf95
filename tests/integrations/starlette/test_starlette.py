"""Starlette: routes, the request middleware and the lifespan with embedded workers."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("starlette")

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import taskq_starlette
from taskq_core import MissingExtra, TaskQueue, Worker
from taskq_core.context import current_trace
from tests.integrations.leaks import embedded_tasks, leftover_threads, taskq_threads

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def shop(tq: TaskQueue, *, defer: bool = False, layers: int = 1, workers: int = 0) -> Starlette:
    """An app whose endpoints enqueue ``echo`` then answer with the status they are told."""

    @tq.task(name="echo")
    def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    async def order(request: Request) -> Response:
        handle = await echo.enqueue_async(int(request.query_params.get("n", "1")))
        status = int(request.query_params.get("status", "200"))
        if status == 999:
            raise RuntimeError("handler blew up")
        return JSONResponse({"task_id": handle.id}, status_code=status)

    def order_sync(request: Request) -> Response:
        # a plain endpoint runs in a thread: the scope must follow it there
        handle = echo.enqueue(7)
        return JSONResponse({"task_id": handle.id})

    async def later(request: Request) -> Response:
        # enqueued by a background task, after the response started
        return JSONResponse({}, background=BackgroundTask(echo.enqueue_async, 5))

    return Starlette(
        routes=[
            Route("/orders", order, methods=["POST"]),
            Route("/orders/sync", order_sync, methods=["POST"]),
            Route("/later", later, methods=["POST"]),
            *taskq_starlette.routes(tq),
        ],
        middleware=[Middleware(taskq_starlette.TaskqMiddleware, tq=tq, defer=defer)] * layers,
        lifespan=taskq_starlette.lifespan(tq, embedded_workers=workers),
    )


def run_all(tq: TaskQueue) -> Worker:
    worker = tq.worker(burst=True, handle_signals=False)
    worker.run()
    return worker


def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with TestClient(shop(tq), raise_server_exceptions=False) as client:
        given = client.post("/orders", headers={"X-Request-ID": "order-42"})
        traced = client.post("/orders", headers={"traceparent": TRACEPARENT})
        fresh = client.post("/orders/sync")
    assert given.headers["x-request-id"] == "order-42"
    assert traced.headers["x-request-id"] == TRACE_ID
    new_id = fresh.headers["x-request-id"]
    assert len(new_id) == 32
    run_all(tq)
    assert tq.handle(given.json()["task_id"]).result(5)["trace"] == {"correlation_id": "order-42"}
    assert tq.handle(traced.json()["task_id"]).result(5)["trace"] == {
        "correlation_id": TRACE_ID,
        "traceparent": TRACEPARENT,
    }
    assert tq.handle(fresh.json()["task_id"]).result(5)["trace"]["correlation_id"] == new_id


@pytest.mark.parametrize("status", [400, 422, 500, 999])
def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], status: int
) -> None:
    tq = make_app()
    with TestClient(shop(tq, defer=True), raise_server_exceptions=False) as client:
        failed = client.post(f"/orders?status={status}")
        ok = client.post("/orders")
    assert failed.status_code == (500 if status == 999 else status)
    assert ok.status_code == 200
    # the successful request's task was queued before its response started
    assert tq.handle(ok.json()["task_id"]).status() == "queued"
    if status != 999:
        assert tq.handle(failed.json()["task_id"]).status() == "unknown"
    ready = {q.name: q.ready for q in tq.broker.queue_info(["default"])}
    assert ready == {"default": 1}


async def test_deferred_tasks_are_queued_before_the_response_starts(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    app = shop(tq, defer=True)
    seen: list[tuple[str, int]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.start":
            # what a client reading the task id from this response would find in Redis
            info = await asyncio.to_thread(tq.broker.queue_info, ["default"])
            seen.append(("start", info[0].ready))

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/orders",
        "raw_path": b"/orders",
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    try:
        await app(scope, receive, send)
    finally:
        await tq.aclose()
    assert seen == [("start", 1)]


def test_deferred_enqueue_from_a_background_task_is_sent(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    with TestClient(shop(tq, defer=True)) as client:
        assert client.post("/later").status_code == 200
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]


def test_enqueues_are_counted_per_route(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with TestClient(shop(tq)) as client:
        client.post("/orders")
        client.post("/orders")
        client.post("/orders/sync")
        client.get("/tasks/health")
    assert tq.broker.read_counters("routes") == {"/orders": 2, "/orders/sync": 1}


def test_routes_answer_under_the_prefix(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    app = Starlette(routes=taskq_starlette.routes(tq, prefix="/ops/tasks/"))
    with TestClient(app) as client:
        health = client.get("/ops/tasks/health")
        missing = client.get("/ops/tasks/no-such-route")
    assert health.status_code in (200, 503)
    assert health.headers["content-type"] == "application/json"
    assert isinstance(health.json(), dict)
    assert missing.status_code == 404


def test_embedded_workers_start_with_the_app_and_stop_with_it(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    app = shop(tq, workers=2)
    lifespan = app.router.lifespan_context
    assert isinstance(lifespan, taskq_starlette.TaskqLifespan)
    assert lifespan.workers == []
    with TestClient(app) as client:
        assert len(lifespan.workers) == 2
        task_id = client.post("/orders?n=3").json()["task_id"]
        # an embedded worker, not this test, runs it
        assert tq.handle(task_id).result(20)["n"] == 3
    assert lifespan.workers == []
    assert leftover_threads(before) == []


async def test_lifespan_leaves_no_asyncio_task_behind(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()

    @tq.task(name="double")
    async def double(n: int) -> int:
        return 2 * n

    before = taskq_threads()
    lifespan = taskq_starlette.lifespan(tq, embedded_workers=2)
    async with lifespan:
        assert embedded_tasks() == ["taskq-embedded-0", "taskq-embedded-1"]
        workers = lifespan.workers
        handle = await double.enqueue_async(21)
        assert await handle.result_async(20) == 42
    assert embedded_tasks() == []
    assert sum(w.counts.succeeded for w in workers) == 1
    assert [w.stragglers for w in workers] == [0, 0]
    assert leftover_threads(before) == []


async def test_a_lifespan_composed_twice_runs_one_pool(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    outer = taskq_starlette.lifespan(tq, embedded_workers=2)
    inner = taskq_starlette.lifespan(tq, embedded_workers=2)

    @asynccontextmanager
    async def composed(app: Any) -> AsyncIterator[None]:
        async with outer, inner:
            yield

    async with composed(None):
        assert embedded_tasks() == ["taskq-embedded-0", "taskq-embedded-1"]
        assert inner.workers == outer.workers
    assert embedded_tasks() == []


def test_middleware_installed_twice_is_harmless(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with TestClient(shop(tq, defer=True, layers=2)) as client:
        response = client.post("/orders", headers={"X-Request-ID": "twice"})
    assert response.headers.get_list("x-request-id") == ["twice"]
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]
    assert tq.broker.read_counters("routes") == {"/orders": 1}


def test_a_bad_embedded_worker_count_is_refused(make_app: Callable[..., TaskQueue]) -> None:
    with pytest.raises(ValueError, match="embedded_workers"):
        taskq_starlette.lifespan(make_app(), embedded_workers=-1)


def test_missing_starlette_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "starlette", None)
    for name in [
        m for m in sys.modules if m == "taskq_starlette" or m.startswith("taskq_starlette.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[starlette\]'"):
        importlib.import_module("taskq_starlette")
