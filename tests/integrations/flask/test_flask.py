"""Flask: the Blueprint, request hooks (correlation id, deferred enqueues), the app context
inside tasks, embedded workers, settings from app.config, ``flask taskq worker``."""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

pytest.importorskip("flask")

from flask import Flask, abort, current_app, jsonify, request

from taskq_core import BrokerRefused, ConfigurationError, MissingExtra, TaskQueue
from taskq_core.context import current_trace
from taskq_core.redact import redact_text
from taskq_core.startup import check_broker
from taskq_flask import AppContextMiddleware, TaskQ
from tests.integrations.leaks import leftover_threads, taskq_threads
from tests.security.servers import redis_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def drain(tq: TaskQueue) -> None:
    """Run every queued task in a worker here, then return."""
    tq.worker(burst=True, handle_signals=False, concurrency=2).run()


def build(tq: TaskQueue | None = None, **config: Any) -> tuple[Flask, TaskQ]:
    """A Flask app with the test views, taskq installed over ``tq`` (or from config)."""
    app = Flask("shop")
    app.config.update(SHOP_CURRENCY="EUR", **config)

    @app.get("/enqueue")
    def enqueue() -> Any:
        handle = current_app.extensions["taskq"].tq.enqueue("t.trace")
        return jsonify(task_id=handle.id), int(request.args.get("status", "200"))

    @app.get("/refuse")
    def refuse() -> Any:
        current_app.extensions["taskq"].tq.enqueue("t.trace")
        abort(422)

    @app.get("/boom")
    def boom() -> Any:
        current_app.extensions["taskq"].tq.enqueue("t.trace")
        raise RuntimeError("the view failed after enqueueing")

    ext = TaskQ(app, tq=tq, auth=lambda r: r.headers.get("authorization") == "Bearer ok")
    return app, ext


def register(tq: TaskQueue) -> None:
    @tq.task(name="t.trace")
    def trace() -> dict[str, str] | None:
        return current_trace()

    @tq.task(name="t.context")
    def context() -> dict[str, str]:
        # current_app works because the task runs inside the app context
        return {"app": current_app.name, "currency": current_app.config["SHOP_CURRENCY"]}


@pytest.fixture
def tq(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    app = make_app("redis")
    register(app)
    return app


@pytest.fixture
def stop_all() -> Iterator[list[TaskQ]]:
    """Extensions whose embedded workers are stopped after the test, whatever happens."""
    exts: list[TaskQ] = []
    yield exts
    for ext in exts:
        ext.stop_workers()


# -- routes


def test_blueprint_serves_the_core_routes(tq: TaskQueue) -> None:
    app, _ = build(tq)
    client = app.test_client()
    for path in ("/tasks", "/tasks/"):
        index = client.get(path)
        assert index.status_code == 200
        assert index.content_type == "application/json"
    health = client.get("/tasks/health")
    assert health.status_code == 200
    assert "components" in health.get_json()
    missing = client.get("/tasks/nope")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "not_found"
    wrong = client.delete("/tasks/health")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET, HEAD"
    head = client.head("/tasks/health")
    assert head.status_code == 200
    assert head.data == b""


def test_route_prefix_from_config(tq: TaskQueue) -> None:
    app, _ = build(tq, TASKQ_ROUTE_PREFIX="/ops/taskq")
    client = app.test_client()
    assert client.get("/ops/taskq/health").status_code == 200
    assert client.get("/tasks/health").status_code == 404
    openapi = client.get("/ops/taskq/openapi.json").get_json()
    assert any(p.startswith("/ops/taskq/") for p in openapi["paths"])


def test_admin_routes_need_the_auth_callable(tq: TaskQueue) -> None:
    client = build(tq)[0].test_client()
    url = "/tasks/failed/default/purge"
    assert client.post(url, json={"all": True}).status_code == 401
    no = {"Authorization": "Bearer no"}
    assert client.post(url, json={"all": True}, headers=no).status_code == 403
    ok = {"Authorization": "Bearer ok"}
    assert client.post(url, json={"all": True}, headers=ok).status_code == 200
    # the old query-string form (a plain HTML form could send it) is refused
    assert client.post(url + "?all=true", headers=ok).status_code == 415
    assert client.post(url + "?all=true", json={}, headers=ok).status_code == 400


# -- request hooks


def test_correlation_id_reaches_the_task(tq: TaskQueue) -> None:
    client = build(tq)[0].test_client()
    r = client.get("/enqueue", headers={"X-Request-ID": "req-42"})
    assert r.headers["X-Request-ID"] == "req-42"
    traced = client.get("/enqueue", headers={"traceparent": TRACEPARENT})
    assert traced.headers["X-Request-ID"] == TRACE_ID
    fresh = client.get("/enqueue").headers["X-Request-ID"]
    assert fresh not in ("", "req-42", TRACE_ID)
    drain(tq)
    assert tq.handle(r.get_json()["task_id"]).result(timeout=10)["correlation_id"] == "req-42"
    assert tq.handle(traced.get_json()["task_id"]).result(timeout=10) == {
        "correlation_id": TRACE_ID,
        "traceparent": TRACEPARENT,
    }
    assert tq.broker.read_counters("routes") == {"/enqueue": 3}


@pytest.mark.parametrize("path", ["/enqueue?status=500", "/enqueue?status=400", "/refuse", "/boom"])
def test_deferred_enqueues_of_a_failed_request_are_dropped(tq: TaskQueue, path: str) -> None:
    app, _ = build(tq, TASKQ_DEFER_ENQUEUE=True)
    r = app.test_client().get(path)
    assert r.status_code >= 400
    assert "X-Request-ID" in r.headers
    if r.is_json:
        assert tq.handle(r.get_json()["task_id"]).status() == "unknown"
    worker = tq.worker(burst=True, handle_signals=False)
    worker.run()
    assert worker.counts.started == 0  # nothing to run: the held task was never sent
    assert tq.broker.read_counters("routes") == {path.split("?", maxsplit=1)[0]: 1}


def test_deferred_enqueues_of_a_successful_request_are_sent(tq: TaskQueue) -> None:
    app, _ = build(tq, TASKQ_DEFER_ENQUEUE=True)
    r = app.test_client().get("/enqueue")
    assert r.status_code == 200
    # sent before the response went out: the client may rely on the task id at once
    assert tq.handle(r.get_json()["task_id"]).status() == "queued"


def test_without_defer_enqueues_go_at_once(tq: TaskQueue) -> None:
    app, _ = build(tq)
    r = app.test_client().get("/enqueue?status=500")
    assert tq.handle(r.get_json()["task_id"]).status() == "queued"


# -- tasks


def test_tasks_run_inside_the_app_context(tq: TaskQueue) -> None:
    build(tq)
    handle = tq.enqueue("t.context")
    drain(tq)  # this thread has no app context: the worker's task middleware pushes it
    assert handle.result(timeout=10) == {"app": "shop", "currency": "EUR"}


def test_install_twice_is_harmless(tq: TaskQueue) -> None:
    app, ext = build(tq)
    ext.init_app(app)
    TaskQ(app, tq=tq)
    assert sum(isinstance(m, AppContextMiddleware) for m in tq.middleware) == 1
    assert [r.rule for r in app.url_map.iter_rules() if r.endpoint.startswith("taskq.")] == [
        "/tasks",
        "/tasks/<taskq_path:path>",
    ]
    r = app.test_client().get("/enqueue", headers={"X-Request-ID": "once"})
    assert r.headers.getlist("X-Request-ID") == ["once"]
    assert tq.broker.read_counters("routes") == {"/enqueue": 1}


def test_embedded_workers_start_with_the_app_and_stop_with_it(
    tq: TaskQueue, stop_all: list[TaskQ]
) -> None:
    before = taskq_threads()
    app, ext = build(tq, TASKQ_EMBEDDED_WORKERS=1)
    stop_all.append(ext)
    assert not app.extensions["taskq"].workers.running  # not for `flask` commands
    r = app.test_client().get("/enqueue", headers={"X-Request-ID": "embedded"})
    assert app.extensions["taskq"].workers.running
    result = tq.handle(r.get_json()["task_id"]).result(timeout=30)
    assert result["correlation_id"] == "embedded"
    assert {t.name for t in taskq_threads() - before} >= {"taskq-embedded", "taskq-lease"}
    ext.stop_workers(app)
    assert not app.extensions["taskq"].workers.running
    assert leftover_threads(before) == []
    ext.stop_workers(app)  # twice: harmless


def test_flask_taskq_worker_command(tq: TaskQueue) -> None:
    app, _ = build(tq)
    handle = tq.enqueue("t.context")
    result = app.test_cli_runner().invoke(args=["taskq", "worker", "--burst", "-c", "2"])
    assert result.exit_code == 0, result.output
    assert handle.result(timeout=10) == {"app": "shop", "currency": "EUR"}


@pytest.mark.slow
def test_flask_taskq_worker_exits_4_when_redis_refuses_the_password() -> None:
    """As ``taskq worker``: exit code 4 and its one line, not a retry loop (the command runs
    in a thread so that a command retrying for ever fails the test instead of hanging it)."""
    with redis_server("--requirepass", "right-pw") as port:
        tq = TaskQueue(f"redis://:wrong-pw@127.0.0.1:{port}/0", key_prefix="refused")
        try:
            with pytest.raises(BrokerRefused) as refused:
                check_broker(tq)
            app, _ = build(tq)
            results: list[Any] = []

            def invoke() -> None:
                results.append(app.test_cli_runner().invoke(args=["taskq", "worker", "--burst"]))

            thread = threading.Thread(target=invoke, daemon=True)
            thread.start()
            thread.join(30)
            assert results, "still running 30 s after Redis refused its password"
            assert results[0].exit_code == 4, results[0].output
            assert f"error: {redact_text(str(refused.value))}" in results[0].output
            assert "wrong-pw" not in results[0].output
        finally:
            tq.close()


# -- configuration


def test_taskqueue_built_from_app_config(redis_url: str, prefix: str) -> None:
    app, ext = build(
        TASKQ_BROKER_URL=redis_url, TASKQ_KEY_PREFIX=prefix, TASKQ_WORKER={"concurrency": 3}
    )
    try:
        with app.app_context():
            assert ext.tq.settings.key_prefix == prefix
            assert ext.tq.settings.worker.concurrency == 3
        assert app.test_client().get("/tasks/health").status_code == 200
    finally:
        ext.state(app).tq.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"TASKQ_WORKER": {"concurrency": 0}}, r"TASKQ_WORKER\['concurrency'\] = 0"),
        ({"TASKQ_KEY_PREFX": "x"}, r"TASKQ_KEY_PREFX = .*did you mean TASKQ_KEY_PREFIX"),
        ({"TASKQ_EMBEDDED_WORKERS": 99}, r"TASKQ_EMBEDDED_WORKERS = 99: must be an integer"),
        ({"TASKQ_DEFER_ENQUEUE": "yes"}, r"TASKQ_DEFER_ENQUEUE = 'yes': must be True or False"),
        ({"TASKQ_ROUTE_PREFIX": "tasks"}, r"TASKQ_ROUTE_PREFIX = 'tasks': must be a path"),
    ],
)
def test_bad_config_names_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build(**config)


def test_config_keys_next_to_a_given_taskqueue_are_refused(tq: TaskQueue) -> None:
    with pytest.raises(ConfigurationError, match=r"TASKQ_KEY_PREFIX.*configure that TaskQueue"):
        build(tq, TASKQ_KEY_PREFIX="other")


def test_factory_pattern(tq: TaskQueue) -> None:
    ext = TaskQ(tq=tq)
    app = Flask("factory")
    ext.init_app(app)
    with app.app_context():
        assert ext.tq is tq
    assert orjson.loads(app.test_client().get("/tasks/health").data)["status"]


def test_missing_flask_raises_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "taskq_flask" or m.startswith("taskq_flask.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[flask\]'"):
        importlib.import_module("taskq_flask")


def test_a_deferred_send_that_fails_turns_the_response_into_a_500(
    tq: TaskQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    app, _ = build(tq, TASKQ_DEFER_ENQUEUE=True)

    def down(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(tq.broker, "enqueue", down)
    r = app.test_client().get("/enqueue")
    # not a 200 for work that was never queued
    assert r.status_code == 500
