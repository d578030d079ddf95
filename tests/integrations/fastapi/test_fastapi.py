"""FastAPI with taskq_starlette's pieces: routes, middleware, lifespan, via FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("fastapi")

from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient

import taskq_starlette
from taskq_core import TaskQueue
from taskq_core.context import current_trace
from tests.integrations.leaks import leftover_threads, taskq_threads


def shop(tq: TaskQueue, *, defer: bool = False, workers: int = 0, layers: int = 1) -> FastAPI:
    """A FastAPI app composing taskq's lifespan into its own, as the docs show."""
    started: list[str] = []

    @tq.task(name="echo")
    async def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        started.append("app")
        async with taskq_starlette.lifespan(tq, embedded_workers=workers):
            yield

    app = FastAPI(lifespan=lifespan)
    app.state.started = started
    app.router.routes.extend(taskq_starlette.routes(tq, prefix="/tasks"))
    for _ in range(layers):
        app.add_middleware(taskq_starlette.TaskqMiddleware, tq=tq, defer=defer)

    async def order_id(n: int = 1) -> str:
        # enqueued from a dependency: still inside the request's scope
        return (await echo.enqueue_async(n)).id

    @app.post("/orders/{shop_id}")
    async def place(
        shop_id: str, task_id: str = Depends(order_id), fail: int = 0
    ) -> dict[str, str]:
        if fail:
            raise HTTPException(fail, "refused")
        return {"task_id": task_id, "shop": shop_id}

    return app


def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with TestClient(shop(tq)) as client:
        response = client.post("/orders/a", headers={"X-Request-ID": "fastapi-1"})
    assert response.headers["x-request-id"] == "fastapi-1"
    tq.worker(burst=True, handle_signals=False).run()
    result = tq.handle(response.json()["task_id"]).result(5)
    assert result["trace"] == {"correlation_id": "fastapi-1"}


@pytest.mark.parametrize("fail", [404, 409, 503])
def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], fail: int
) -> None:
    tq = make_app()
    with TestClient(shop(tq, defer=True)) as client:
        refused = client.post(f"/orders/a?fail={fail}")
        ok = client.post("/orders/b")
    assert refused.status_code == fail
    assert tq.handle(ok.json()["task_id"]).status() == "queued"
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]
    # counted per route template (FastAPI's APIRoute), refused or not
    assert tq.broker.read_counters("routes") == {"/orders/{shop_id}": 2}


def test_routes_are_served_and_stay_out_of_the_openapi_schema(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    with TestClient(shop(tq)) as client:
        health = client.get("/tasks/health")
        wrong = client.delete("/tasks/health")
        schema = client.get("/openapi.json").json()
    assert health.status_code in (200, 503)
    assert isinstance(health.json(), dict)
    assert wrong.status_code == 405
    assert not any(path.startswith("/tasks") for path in schema["paths"])


def test_embedded_workers_start_with_the_app_and_stop_with_it(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    app = shop(tq, workers=1)
    with TestClient(app) as client:
        assert app.state.started == ["app"]
        task_id = client.post("/orders/a?n=9").json()["task_id"]
        assert tq.handle(task_id).result(20)["n"] == 9
    assert leftover_threads(before) == []


def test_middleware_added_twice_is_harmless(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with TestClient(shop(tq, defer=True, layers=2)) as client:
        response = client.post("/orders/a", headers={"X-Request-ID": "once"})
    assert response.headers.get_list("x-request-id") == ["once"]
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]
    assert tq.broker.read_counters("routes") == {"/orders/{shop_id}": 1}
