"""Sanic: the extension's routes, its request/response middleware and the server listeners,
under Sanic's own server (sanic-testing's ReusableClient on a loop of this test's own)."""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

import pytest

pytest.importorskip("sanic")
pytest.importorskip("sanic_testing")

import httpx
from sanic import Request, Sanic, json
from sanic.exceptions import SanicException
from sanic_testing.reusable import ReusableClient

from taskq_core import MissingExtra, TaskQueue
from taskq_core.context import current_trace
from taskq_core.http import Request as CoreRequest
from taskq_sanic import TaskQ
from tests.examples.shop_smoke import free_port
from tests.integrations.leaks import leftover_threads, taskq_threads

T = TypeVar("T")


def shop(tq: TaskQueue, *exts: TaskQ) -> Sanic[Any, Any]:
    """An app whose handler enqueues ``echo`` then answers with the status it is told."""
    # Sanic keeps a registry of apps by name: one name per app
    app: Sanic[Any, Any] = Sanic(f"shop_{uuid.uuid4().hex[:12]}")

    @tq.task(name="echo")
    async def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    @app.post("/orders/<kind>")
    async def order(request: Request, kind: str) -> Any:
        n = int(request.args.get("n", "1"))
        status, fail = int(request.args.get("status", "201")), int(request.args.get("fail", "0"))
        handle = await echo.enqueue_async(n)
        if fail == 1:
            raise RuntimeError("handler blew up")
        if fail:
            raise SanicException("refused", status_code=fail)
        return json({"task_id": handle.id}, status=status)

    for ext in exts or (TaskQ(tq=tq),):
        ext.init_app(app)
    return app


class Served:
    """``app`` under Sanic's own server on a loop of its own; its listeners run on enter
    (before_server_start) and exit (after_server_stop)."""

    def __init__(self, app: Sanic[Any, Any]) -> None:
        self.loop = asyncio.new_event_loop()
        port = free_port()
        self.server = ReusableClient(app, port=port, loop=self.loop)
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.http.request(method, path, **kwargs))

    def __enter__(self) -> Served:
        self.server.run()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.run(self.http.aclose())
            self.server.stop()
            self.run(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()


def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with Served(shop(tq)) as served:
        response = served.request("POST", "/orders/a", headers={"X-Request-ID": "sanic-1"})
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "sanic-1"
    tq.worker(burst=True, handle_signals=False).run()
    result = tq.handle(response.json()["task_id"]).result(5)
    assert result["trace"] == {"correlation_id": "sanic-1"}


@pytest.mark.parametrize("query", ["status=500", "status=422", "fail=409", "fail=1"])
def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], query: str
) -> None:
    tq = make_app()
    with Served(shop(tq, TaskQ(tq=tq, defer=True))) as served:
        failed = served.request("POST", f"/orders/a?{query}")
        ok = served.request("POST", "/orders/b")
    assert failed.status_code >= 400
    assert failed.headers["x-request-id"]
    assert ok.status_code == 201
    # only the successful request's task was sent, and both were counted under the route
    assert tq.handle(ok.json()["task_id"]).status() == "queued"
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]
    assert tq.broker.read_counters("routes") == {"/orders/<kind:str>": 2}


def test_the_status_another_response_middleware_sets_decides(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    app = shop(tq, TaskQ(tq=tq, defer=True))

    @app.on_response  # type: ignore[untyped-decorator]  # Sanic's overloads leave it untyped
    async def spoil(request: Request, response: Any) -> None:
        if request.args.get("spoil"):
            response.status = 503

    with Served(app) as served:
        spoiled = served.request("POST", "/orders/a?spoil=1")
        ok = served.request("POST", "/orders/b")
    assert spoiled.status_code == 503
    # the deferred task of the spoiled response was dropped: only the other one is queued
    assert tq.handle(ok.json()["task_id"]).status() == "queued"
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]


def test_a_deferred_send_that_fails_turns_the_response_into_a_500(
    make_app: Callable[..., TaskQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    tq = make_app()
    app = shop(tq, TaskQ(tq=tq, defer=True))

    async def down(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(tq.broker, "enqueue_async", down)
    with Served(app) as served:
        response = served.request("POST", "/orders/a", headers={"X-Request-ID": "down-1"})
    # not a 201 for work that was never queued (Sanic itself would log the error and send it)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "down-1"
    assert "task_id" not in response.text
    assert "Redis went away" not in response.text


def test_routes_answer_under_the_prefix(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    with Served(shop(tq, TaskQ(tq=tq, prefix="/ops/tasks"))) as served:
        health = served.request("GET", "/ops/tasks/health")
        bare, slash = served.request("GET", "/ops/tasks"), served.request("GET", "/ops/tasks/")
        missing = served.request("GET", "/ops/tasks/no-such-route")
        wrong = served.request("DELETE", "/ops/tasks/health")
        # a method Sanic's router does not know: the core answers it all the same
        odd = served.request("PROPFIND", "/ops/tasks/health")
        elsewhere = served.request("PROPFIND", "/ops/tasksx")
    assert health.status_code in (200, 503)
    assert isinstance(health.json(), dict)
    assert bare.status_code == slash.status_code == 200
    assert bare.json() == slash.json()
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/json")
    assert wrong.status_code == odd.status_code == 405
    assert odd.headers["allow"] == "GET, HEAD"
    assert odd.headers["content-type"].startswith("application/json")
    # outside the prefix Sanic answers as it does, through the scope all the same
    assert elsewhere.status_code in (404, 405)
    assert "allow" not in elsewhere.headers or elsewhere.headers["allow"] != "GET, HEAD"
    assert elsewhere.headers["x-request-id"]


def test_auth_gets_the_sanic_request(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    seen: list[Any] = []

    def auth(req: CoreRequest) -> bool:
        seen.append(req.native)
        return req.headers.get("authorization") == "Bearer ok"

    retry = "/tasks/failed/default/retry"
    with Served(shop(tq, TaskQ(tq=tq, auth=auth))) as served:
        anonymous = served.request("POST", retry, json={"all": True})
        wrong = served.request("POST", retry, json={"all": True}, headers={"authorization": "x"})
        right = served.request(
            "POST", retry, json={"all": True}, headers={"authorization": "Bearer ok"}
        )
    assert anonymous.status_code == 401
    assert wrong.status_code == 403
    assert right.status_code == 200
    assert right.json() == {"queue": "default", "requested": 0, "retried": 0}
    assert seen
    assert all(isinstance(r, Request) and r.path == retry for r in seen)


def test_embedded_workers_start_before_serving_and_stop_after(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    ext = TaskQ(tq=tq, embedded_workers=2)
    app = shop(tq, ext)
    assert ext.workers == []
    with Served(app) as served:
        # running from the server's start, before any request
        assert len(ext.workers) == 2
        task_id = served.request("POST", "/orders/a?n=6").json()["task_id"]
        # an embedded worker, not this test, runs it (in the server's loop)
        assert served.run(tq.handle(task_id).result_async(20))["n"] == 6
        tasks = [t for t in asyncio.all_tasks(served.loop) if t.get_name().startswith("taskq-")]
        assert len(tasks) == 2
    assert ext.workers == []
    assert all(t.done() for t in tasks)
    assert leftover_threads(before) == []


def test_installed_twice_is_harmless(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    first = TaskQ(tq=tq, defer=True, embedded_workers=1)
    second = TaskQ(tq=tq, defer=True, embedded_workers=1)
    app = shop(tq, first, second)
    assert app.ctx.taskq is first
    with Served(app) as served:
        assert len(first.workers) == 1
        assert second.workers == []
        response = served.request("POST", "/orders/a", headers={"X-Request-ID": "twice"})
        assert response.headers.get_list("x-request-id") == ["twice"]
        assert served.run(tq.handle(response.json()["task_id"]).result_async(20))["n"] == 1
    assert tq.broker.read_counters("routes") == {"/orders/<kind:str>": 1}


def test_a_taskqueue_is_required_and_a_bad_worker_count_refused(
    make_app: Callable[..., TaskQueue],
) -> None:
    with pytest.raises(TypeError, match="needs the TaskQueue"):
        TaskQ()
    with pytest.raises(ValueError, match="embedded_workers must be an integer"):
        TaskQ(tq=make_app(), embedded_workers=-1)


def test_missing_sanic_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sanic", None)
    for name in [m for m in sys.modules if m == "taskq_sanic" or m.startswith("taskq_sanic.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[sanic\]'"):
        importlib.import_module("taskq_sanic")
