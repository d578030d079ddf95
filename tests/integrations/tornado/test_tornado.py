"""Tornado: the routes handler, TaskqRequestHandler's request scope, serving() with embedded
workers, auth; against a real Tornado server on a free port of the test's loop."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

pytest.importorskip("tornado")
pytest.importorskip("httpx")

import httpx
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

import taskq_tornado
from taskq_core import MissingExtra, TaskQueue
from taskq_core.context import current_trace
from taskq_core.http import Request as CoreRequest
from taskq_core.web import RequestScope
from tests.integrations.leaks import embedded_tasks, leftover_threads, taskq_threads

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def shop(tq: TaskQueue, *, defer: bool = False, auth: Any = None) -> tornado.web.Application:
    """``POST /orders/<kind>`` enqueues ``echo`` then answers, fails or raises as told."""

    @tq.task(name="echo")
    async def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    class Orders(taskq_tornado.TaskqRequestHandler):
        taskq_route = "/orders/{kind}"

        async def post(self, kind: str) -> None:
            handle = await echo.enqueue_async(int(self.get_query_argument("n", "1")))
            then = self.get_query_argument("then", "ok")
            if then == "raise":
                raise RuntimeError("handler blew up")
            if then == "bad":
                raise tornado.web.HTTPError(400)
            self.set_status(int(self.get_query_argument("status", "200")))
            if then == "flush":  # headers out before the handler ends
                self.write({"task_id": handle.id})
                await self.flush()
                return
            if then == "await-finish":
                await self.finish({"task_id": handle.id})  # must not wait on itself
                return
            self.write({"task_id": handle.id})

    class Plain(taskq_tornado.TaskqRequestHandler):
        async def get(self) -> None:
            self.write({"ok": True})

    return tornado.web.Application(
        [
            (r"/orders/(\w+)", Orders),
            (r"/plain", Plain),
            *taskq_tornado.routes(tq, auth=auth),
        ],
        taskq=tq,
        taskq_defer=defer,
    )


@asynccontextmanager
async def served(app: tornado.web.Application) -> AsyncIterator[httpx.AsyncClient]:
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            yield c
    finally:
        server.stop()
        await server.close_all_connections()


def ready(tq: TaskQueue) -> int:
    return tq.broker.queue_info(["default"])[0].ready


async def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    async with served(shop(tq)) as client:
        given = await client.post("/orders/a", headers={"X-Request-ID": "tornado-1"})
        traced = await client.post("/orders/a", headers={"traceparent": TRACEPARENT})
        fresh = await client.post("/orders/a")
    assert given.headers["x-request-id"] == "tornado-1"
    assert traced.headers["x-request-id"] == TRACE_ID
    assert len(fresh.headers["x-request-id"]) == 32
    await tq.worker(burst=True, handle_signals=False).async_run()
    got = await tq.handle(given.json()["task_id"]).result_async(5)
    assert got["trace"] == {"correlation_id": "tornado-1"}
    got = await tq.handle(traced.json()["task_id"]).result_async(5)
    assert got["trace"] == {"correlation_id": TRACE_ID, "traceparent": TRACEPARENT}
    await tq.aclose()


@pytest.mark.parametrize("then", ["status=404", "status=500", "then=bad", "then=raise"])
async def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], then: str
) -> None:
    tq = make_app()
    async with served(shop(tq, defer=True)) as client:
        failed = await client.post(f"/orders/a?{then}")
        assert failed.status_code >= 400
        assert failed.headers["x-request-id"]
        assert ready(tq) == 0
        ok = await client.post("/orders/b")
        # queued before the response went out: the client can rely on its task id
        assert ok.status_code == 200
        assert await tq.handle(ok.json()["task_id"]).status_async() == "queued"
    assert ready(tq) == 1
    await tq.aclose()


async def test_a_handler_awaiting_its_own_finish_gets_its_tasks_sent(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    async with served(shop(tq, defer=True)) as client:
        response = await client.post("/orders/a?then=await-finish")
        assert response.status_code == 200
        assert await tq.handle(response.json()["task_id"]).status_async() == "queued"
    await tq.aclose()


async def test_enqueues_are_counted_per_route(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    async with served(shop(tq)) as client:
        for kind in ("a", "b"):
            await client.post(f"/orders/{kind}")
        await client.get("/plain")
        await client.get("/tasks/health")
    assert await counted(tq, 2) == {"/orders/{kind}": 2}
    await tq.aclose()


async def counted(tq: TaskQueue, n: int, timeout: float = 10.0) -> dict[str, int]:
    """The route counters once they add up to ``n``: a request's scope ends (and writes its
    count) when its coroutine returns, just after the response went out, so the client can
    be there first; Tornado exposes no event for that end, so Redis is polled."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = tq.broker.read_counters("routes")
        if sum(found.values()) >= n or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.02)


async def test_an_open_scope_of_the_same_queue_makes_the_handler_pass_through(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    # the server runs inside an outer scope of the same TaskQueue (its connections' tasks
    # copy the context it listens in): as if taskq were installed around the app too
    async with (
        RequestScope(tq, {"x-request-id": "outer"}, defer=True) as outer,
        served(shop(tq, defer=True)) as client,
    ):
        response = await client.post("/orders/a", headers={"X-Request-ID": "inner"})
        # the outer scope holds the task: the inner layer neither sent it nor echoed
        assert ready(tq) == 0
        assert outer.enqueued == 1
    assert "x-request-id" not in response.headers
    assert ready(tq) == 1
    await tq.aclose()


@pytest.mark.parametrize("auth_given", [True, False])
async def test_auth_sees_the_tornado_request_and_refusals_pass_through(
    make_app: Callable[..., TaskQueue], auth_given: bool
) -> None:
    tq = make_app()
    seen: list[object] = []

    def auth(request: CoreRequest) -> bool:
        seen.append(request.native)
        return request.headers.get("authorization") == "Bearer ok"

    async with served(shop(tq, auth=auth if auth_given else None)) as client:
        anonymous = await client.get("/tasks/failed")
        wrong = await client.get("/tasks/failed", headers={"Authorization": "Bearer x"})
        right = await client.get("/tasks/failed", headers={"Authorization": "Bearer ok"})
    assert anonymous.status_code == 401
    assert "www-authenticate" in anonymous.headers
    if auth_given:
        assert (wrong.status_code, right.status_code) == (403, 200)
        assert seen
        assert all(type(r) is tornado.httputil.HTTPServerRequest for r in seen)
    else:
        assert (wrong.status_code, right.status_code) == (401, 401)
    await tq.aclose()


async def test_embedded_workers_run_while_serving_and_stop_after(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    serving = taskq_tornado.serving(tq, embedded_workers=2)
    again = taskq_tornado.serving(tq, embedded_workers=2)
    assert serving.workers == []
    async with serving, again, served(shop(tq)) as client:
        # started with the server, and a second serving() joined the first pool
        assert embedded_tasks() == ["taskq-embedded-0", "taskq-embedded-1"]
        assert again.workers == serving.workers
        body = (await client.post("/orders/a?n=4")).json()
        assert (await tq.handle(body["task_id"]).result_async(20))["n"] == 4
    assert embedded_tasks() == []
    assert serving.workers == []
    assert leftover_threads(before) == []


def test_a_bad_embedded_worker_count_is_refused(make_app: Callable[..., TaskQueue]) -> None:
    with pytest.raises(ValueError, match="embedded_workers"):
        taskq_tornado.serving(make_app(), embedded_workers=-1)


def test_missing_tornado_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tornado.web", None)
    for name in [m for m in sys.modules if m == "taskq_tornado" or m.startswith("taskq_tornado.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[tornado\]'"):
        importlib.import_module("taskq_tornado")


async def test_held_tasks_that_cannot_be_sent_turn_the_response_into_a_500(
    make_app: Callable[..., TaskQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    tq = make_app()

    async def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("redis went away")

    monkeypatch.setattr(tq.broker, "enqueue_async", refuse)
    async with served(shop(tq, defer=True)) as client:
        response = await client.post("/orders/a", headers={"X-Request-ID": "lost"})
    # not a 200 with a task id for a task that was never queued
    assert response.status_code == 500
    assert "task_id" not in response.text
    assert response.headers["x-request-id"] == "lost"
    assert ready(tq) == 0
    await tq.aclose()


async def test_after_an_early_flush_held_tasks_follow_the_status(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    async with served(shop(tq, defer=True)) as client:
        failed = await client.post("/orders/a?then=flush&status=500")
        assert failed.status_code == 500
        ok = await client.post("/orders/b?then=flush")
        assert ok.status_code == 200
    # the headers went out first; the response still ended only once the tasks were sent
    # (status 200) or dropped (500)
    assert ready(tq) == 1
    assert await tq.handle(ok.json()["task_id"]).status_async() == "queued"
    await tq.aclose()
