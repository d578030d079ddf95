"""Falcon, both flavours: the sink, the request middleware, embedded workers, auth."""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("falcon")

import falcon
import falcon.asgi
from falcon.testing import ASGIConductor, TestClient

import taskq_falcon
from taskq_core import MissingExtra, TaskQueue
from taskq_core.context import current_trace
from taskq_core.http import Request as CoreRequest
from tests.integrations.leaks import embedded_tasks, leftover_threads, taskq_threads

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def shop(
    tq: TaskQueue,
    *,
    asgi: bool = False,
    defer: bool = False,
    twice: bool = False,
    workers: int = 0,
    auth: Any = None,
) -> tuple[Any, taskq_falcon.TaskqMiddleware]:
    """An app whose ``/orders/{kind}`` enqueues ``echo`` then answers, fails or raises as
    told (``?status=``, ``?then=raise``, ``?then=bad``)."""

    @tq.task(name="echo")
    def echo(n: int) -> dict[str, Any]:
        return {"n": n, "trace": current_trace()}

    def answer(req: Any, resp: Any, task_id: str) -> None:
        then = req.get_param("then", default="ok")
        if then == "raise":
            raise RuntimeError("handler blew up")
        if then == "bad":
            raise falcon.HTTPBadRequest(title="refused")
        resp.status = int(req.get_param("status", default="200"))
        resp.media = {"task_id": task_id}

    class Orders:
        def on_post(self, req: falcon.Request, resp: falcon.Response, kind: str) -> None:
            answer(req, resp, echo.enqueue(int(req.get_param("n", default="1"))).id)

    class AsyncOrders:
        async def on_post(
            self, req: falcon.asgi.Request, resp: falcon.asgi.Response, kind: str
        ) -> None:
            handle = await echo.enqueue_async(int(req.get_param("n", default="1")))
            answer(req, resp, handle.id)

    app: Any = falcon.asgi.App() if asgi else falcon.App()
    app.add_route("/orders/{kind}", AsyncOrders() if asgi else Orders())
    handle = taskq_falcon.install(app, tq, defer=defer, embedded_workers=workers, auth=auth)
    if twice:
        taskq_falcon.install(app, tq, defer=defer, embedded_workers=workers, auth=auth)
    return app, handle


def ready(tq: TaskQueue) -> int:
    return tq.broker.queue_info(["default"])[0].ready


# -- WSGI


def test_correlation_id_reaches_the_task(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    client = TestClient(shop(tq)[0])
    given = client.simulate_post("/orders/a", headers={"X-Request-ID": "falcon-1"})
    traced = client.simulate_post("/orders/a", headers={"traceparent": TRACEPARENT})
    fresh = client.simulate_post("/orders/a")
    assert given.headers["x-request-id"] == "falcon-1"
    assert traced.headers["x-request-id"] == TRACE_ID
    assert len(fresh.headers["x-request-id"]) == 32
    tq.worker(burst=True, handle_signals=False).run()
    assert tq.handle(given.json["task_id"]).result(5)["trace"] == {"correlation_id": "falcon-1"}
    assert tq.handle(traced.json["task_id"]).result(5)["trace"] == {
        "correlation_id": TRACE_ID,
        "traceparent": TRACEPARENT,
    }
    fresh_trace = tq.handle(fresh.json["task_id"]).result(5)["trace"]
    assert fresh_trace["correlation_id"] == fresh.headers["x-request-id"]


@pytest.mark.parametrize("then", ["status=400", "status=500", "then=bad", "then=raise"])
def test_deferred_enqueues_of_a_failed_request_are_dropped(
    make_app: Callable[..., TaskQueue], then: str
) -> None:
    tq = make_app()
    client = TestClient(shop(tq, defer=True)[0])
    failed = client.simulate_post(f"/orders/a?{then}")
    assert failed.status_code >= 400
    assert failed.headers["x-request-id"]
    assert ready(tq) == 0
    ok = client.simulate_post("/orders/b")
    assert ok.status_code == 200
    assert tq.handle(ok.json["task_id"]).status() == "queued"
    assert ready(tq) == 1


def test_enqueues_are_counted_per_route_template(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    client = TestClient(shop(tq)[0])
    for kind in ("a", "b"):
        client.simulate_post(f"/orders/{kind}")
    client.simulate_get("/tasks/health")
    assert tq.broker.read_counters("routes") == {"/orders/{kind}": 2}


def test_installed_twice_is_harmless(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app()
    app, first = shop(tq, defer=True, twice=True, workers=1)
    response = TestClient(app).simulate_post("/orders/a", headers={"X-Request-ID": "twice"})
    assert response.headers["x-request-id"] == "twice"
    assert ready(tq) == 1
    assert tq.broker.read_counters("routes") == {"/orders/{kind}": 1}
    # one embedded worker thread for the TaskQueue, shared by both installs
    assert taskq_falcon.install(falcon.App(), tq, embedded_workers=1).thread is first.thread


def test_routes_answer_under_the_prefix_and_not_beside_it(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    app = falcon.App()
    taskq_falcon.install(app, tq, prefix="/ops/tasks/")
    client = TestClient(app)
    health = client.simulate_get("/ops/tasks/health")
    assert health.status_code in (200, 503)
    assert health.headers["content-type"] == "application/json"
    assert client.simulate_get("/ops/tasks/no-such-route").status_code == 404
    # Falcon's own 404 (not taskq's JSON): the sink does not take /ops/tasksfoo
    beside = client.simulate_get("/ops/tasksfoo")
    assert beside.status_code == 404
    assert "no such route" not in beside.text


@pytest.mark.parametrize("flavour", ["wsgi", "asgi"])
async def test_auth_sees_the_falcon_request_and_its_refusals_pass_through(
    make_app: Callable[..., TaskQueue], flavour: str
) -> None:
    tq = make_app()
    seen: list[object] = []

    def auth(request: CoreRequest) -> bool:
        seen.append(request.native)
        return request.headers.get("authorization") == "Bearer ok"

    app, _ = shop(tq, asgi=flavour == "asgi", auth=auth)
    async with ASGIConductor(app) if flavour == "asgi" else _Sync(app) as client:
        anonymous = await client.simulate_get("/tasks/failed")
        wrong = await client.simulate_get("/tasks/failed", headers={"Authorization": "Bearer x"})
        right = await client.simulate_get("/tasks/failed", headers={"Authorization": "Bearer ok"})
    assert (anonymous.status_code, wrong.status_code, right.status_code) == (401, 403, 200)
    assert "www-authenticate" in anonymous.headers
    kind = falcon.asgi.Request if flavour == "asgi" else falcon.Request
    assert seen
    assert all(type(r) is kind for r in seen)


class _Sync:
    """The WSGI TestClient behind the ASGIConductor's async interface."""

    def __init__(self, app: Any) -> None:
        self._client = TestClient(app)

    async def __aenter__(self) -> _Sync:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def simulate_get(self, path: str, **kwargs: Any) -> Any:
        return self._client.simulate_get(path, **kwargs)

    async def simulate_post(self, path: str, **kwargs: Any) -> Any:
        return self._client.simulate_post(path, **kwargs)


def test_wsgi_embedded_workers_start_when_serving_starts_and_stop(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    app, handle = shop(tq, workers=2)
    assert handle.workers == []  # not at import or install: when the process serves
    gc.collect()  # the hook starts every live WSGI install's threads: only this test's
    taskq_falcon.post_worker_init(object())  # what gunicorn calls in each worker process
    try:
        assert len(handle.workers) == 2
        task_id = TestClient(app).simulate_post("/orders/a?n=3").json["task_id"]
        assert tq.handle(task_id).result(20)["n"] == 3  # an embedded worker ran it
    finally:
        taskq_falcon.worker_exit(object(), object())
    assert handle.workers == []
    assert leftover_threads(before) == []


# -- ASGI


async def test_asgi_correlation_id_and_deferred_enqueues(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    app, _ = shop(tq, asgi=True, defer=True)
    async with ASGIConductor(app) as client:
        failed = await client.simulate_post("/orders/a?status=422")
        ok = await client.simulate_post("/orders/b", headers={"X-Request-ID": "asgi-1"})
        raised = await client.simulate_post("/orders/c?then=raise")
    assert failed.status_code == 422
    assert raised.status_code == 500
    assert ok.headers["x-request-id"] == "asgi-1"
    assert await tq.handle(ok.json["task_id"]).status_async() == "queued"
    assert ready(tq) == 1
    await tq.worker(burst=True, handle_signals=False).async_run()
    result = await tq.handle(ok.json["task_id"]).result_async(5)
    assert result["trace"] == {"correlation_id": "asgi-1"}
    assert tq.broker.read_counters("routes") == {"/orders/{kind}": 3}
    await tq.aclose()


async def test_asgi_embedded_workers_run_from_startup_to_shutdown(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app()
    before = taskq_threads()
    app, handle = shop(tq, asgi=True, workers=2, twice=True)
    assert handle.workers == []
    async with ASGIConductor(app) as client:
        # both installs joined one pool, started by the lifespan's startup event
        assert embedded_tasks() == ["taskq-embedded-0", "taskq-embedded-1"]
        assert len(handle.workers) == 2
        body = (await client.simulate_post("/orders/a?n=4")).json
        assert (await tq.handle(body["task_id"]).result_async(20))["n"] == 4
    assert embedded_tasks() == []
    assert handle.workers == []
    assert leftover_threads(before) == []


def test_a_bad_embedded_worker_count_is_refused(make_app: Callable[..., TaskQueue]) -> None:
    with pytest.raises(ValueError, match="embedded_workers"):
        taskq_falcon.install(falcon.asgi.App(), make_app(), embedded_workers=-1)
    with pytest.raises(ValueError, match="embedded_workers"):
        taskq_falcon.install(falcon.App(), make_app(), embedded_workers=65)


def test_missing_falcon_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "falcon", None)
    for name in [m for m in sys.modules if m == "taskq_falcon" or m.startswith("taskq_falcon.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[falcon\]'"):
        importlib.import_module("taskq_falcon")


@pytest.mark.parametrize("flavour", ["wsgi", "asgi"])
async def test_held_tasks_that_cannot_be_sent_turn_the_response_into_a_500(
    make_app: Callable[..., TaskQueue], monkeypatch: pytest.MonkeyPatch, flavour: str
) -> None:
    tq = make_app()

    def refuse(*args: object, **kwargs: object) -> None:
        raise ConnectionError("redis went away")

    async def refuse_async(*args: object, **kwargs: object) -> None:
        refuse()

    app, _ = shop(tq, asgi=flavour == "asgi", defer=True)
    with monkeypatch.context() as m:
        m.setattr(tq.broker, "enqueue", refuse)
        m.setattr(tq.broker, "enqueue_async", refuse_async)
        async with ASGIConductor(app) if flavour == "asgi" else _Sync(app) as client:
            lost = await client.simulate_post("/orders/a", headers={"X-Request-ID": "lost"})
    # not a success with a task id for a task that was never queued
    assert lost.status_code == 500
    assert "task_id" not in lost.text
    # and the scope was closed all the same: the next request gets its own
    async with ASGIConductor(app) if flavour == "asgi" else _Sync(app) as client:
        ok = await client.simulate_post("/orders/b", headers={"X-Request-ID": "next"})
    assert ok.status_code == 200
    assert ok.headers["x-request-id"] == "next"
    assert ready(tq) == 1
    await tq.aclose()
