"""Quart: the extension's routes, its ASGI request middleware and the serving hooks."""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("quart")

from quart import Quart, abort, jsonify, request

from taskq_core import MissingExtra, TaskQueue
from taskq_core.context import current_trace
from taskq_core.http import Request as CoreRequest
from taskq_quart import TaskQ
from tests.integrations.leaks import embedded_tasks, leftover_threads, taskq_threads


def shop(tq: TaskQueue, *exts: TaskQ) -> Quart:
    """An app whose view enqueues ``echo`` then answers with the status it is told."""
    app = Quart(f"shop_{uuid.uuid4().hex[:8]}")

    @tq.task(name="echo")
    async def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    @app.post("/orders/<kind>")
    async def order(kind: str) -> Any:
        n = int(request.args.get("n", "1"))
        status, fail = int(request.args.get("status", "201")), int(request.args.get("fail", "0"))
        handle = await echo.enqueue_async(n)
        if fail == 1:
            raise RuntimeError("handler blew up")
        if fail:
            abort(fail)
        return jsonify({"task_id": handle.id}), status

    for ext in exts or (TaskQ(tq=tq),):
        ext.init_app(app)
    return app


async def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    app = shop(tq)
    async with app.test_app() as test_app:
        response = await test_app.test_client().post(
            "/orders/a", headers={"X-Request-ID": "quart-1"}
        )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "quart-1"
    task_id = (await response.get_json())["task_id"]
    await tq.worker(burst=True, handle_signals=False).async_run()
    assert (await tq.handle(task_id).result_async(5))["trace"] == {"correlation_id": "quart-1"}
    await tq.aclose()


@pytest.mark.parametrize("query", ["status=500", "status=422", "fail=409", "fail=1"])
async def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], query: str
) -> None:
    tq = make_app()
    app = shop(tq, TaskQ(tq=tq, defer=True))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        failed = await client.post(f"/orders/a?{query}")
        ok = await client.post("/orders/b")
    assert failed.status_code >= 400
    assert ok.status_code == 201
    # only the successful request's task was sent, and both were counted under the rule
    assert tq.handle((await ok.get_json())["task_id"]).status() == "queued"
    assert [q.ready for q in tq.broker.queue_info(["default"])] == [1]
    assert tq.broker.read_counters("routes") == {"/orders/<kind>": 2}


async def test_a_deferred_send_that_fails_never_answers_a_success(
    make_app: Callable[..., TaskQueue], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    tq = make_app()
    app = shop(tq, TaskQ(tq=tq, defer=True))

    async def down(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(tq.broker, "enqueue_async", down)
    async with app.test_app() as test_app:
        # it leaves the app before the response starts: the ASGI server answers 500
        with pytest.raises(redis.ConnectionError):
            await test_app.test_client().post("/orders/a")


async def test_routes_answer_under_the_prefix(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    app = shop(tq, TaskQ(tq=tq, prefix="/ops/tasks"))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        health = await client.get("/ops/tasks/health")
        bare = await client.get("/ops/tasks")
        missing = await client.get("/ops/tasks/no-such-route")
        wrong = await client.delete("/ops/tasks/health")
        odd = await client.open("/ops/tasks/health", method="PROPFIND")  # type: ignore[call-arg]
    assert health.status_code in (200, 503)
    assert isinstance(await health.get_json(), dict)
    assert bare.status_code == 200
    assert missing.status_code == 404
    # the core, not Quart, answers methods no route serves
    assert wrong.status_code == odd.status_code == 405
    assert odd.headers["allow"] == "GET, HEAD"


async def test_auth_gets_the_quart_request(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    seen: list[Any] = []

    def auth(req: CoreRequest) -> bool:
        seen.append(req.native)
        return req.headers.get("authorization") == "Bearer ok"

    app = shop(tq, TaskQ(tq=tq, auth=auth))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        anonymous = await client.post("/tasks/failed/default/retry", json={"all": True})
        wrong = await client.post(
            "/tasks/failed/default/retry", json={"all": True}, headers={"authorization": "x"}
        )
        right = await client.post(
            "/tasks/failed/default/retry",
            json={"all": True},
            headers={"authorization": "Bearer ok"},
        )
    assert anonymous.status_code == 401
    assert wrong.status_code == 403
    assert right.status_code == 200
    assert seen
    assert all(type(r).__module__.startswith("quart") for r in seen)
    assert all(r.path == "/tasks/failed/default/retry" for r in seen)


async def test_embedded_workers_start_before_serving_and_stop_after(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    ext = TaskQ(tq=tq, embedded_workers=2)
    app = shop(tq, ext)
    assert ext.workers(app) == []
    async with app.test_app() as test_app:
        # running from start-up, before any request
        assert len(ext.workers(app)) == 2
        response = await test_app.test_client().post("/orders/a?n=6")
        task_id = (await response.get_json())["task_id"]
        # an embedded worker, not this test, runs it
        assert (await tq.handle(task_id).result_async(20))["n"] == 6
    assert ext.workers(app) == []
    assert embedded_tasks() == []
    assert leftover_threads(before) == []


async def test_installed_twice_is_harmless(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    first = TaskQ(tq=tq, defer=True, embedded_workers=1)
    second = TaskQ(tq=tq, defer=True, embedded_workers=1)
    app = shop(tq, first, second)
    assert app.extensions["taskq"].ext is first
    async with app.test_app() as test_app:
        assert len(first.workers(app)) == 1
        response = await test_app.test_client().post("/orders/a", headers={"X-Request-ID": "twice"})
        assert response.headers.get_all("x-request-id") == ["twice"]
        task_id = (await response.get_json())["task_id"]
        assert (await tq.handle(task_id).result_async(20))["n"] == 1
    assert tq.broker.read_counters("routes") == {"/orders/<kind>": 1}


def test_a_taskqueue_is_required_and_a_bad_worker_count_refused(
    make_app: Callable[..., TaskQueue],
) -> None:
    with pytest.raises(TypeError, match="needs the TaskQueue"):
        TaskQ()
    with pytest.raises(ValueError, match="embedded_workers must be an integer"):
        TaskQ(tq=make_app(), embedded_workers=-1)


def test_missing_quart_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "quart", None)
    for name in [m for m in sys.modules if m == "taskq_quart" or m.startswith("taskq_quart.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[quart\]'"):
        importlib.import_module("taskq_quart")
