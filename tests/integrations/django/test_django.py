"""Django: routes, middleware (correlation id, deferred and on_commit enqueues), connection
handling in tasks, embedded workers, settings read at call time, system checks, the worker
command."""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest

pytest.importorskip("django")

from django.core.checks import run_checks
from django.core.management import call_command
from django.db import connections, transaction
from django.test import Client, override_settings

import taskq_django
from taskq_core import BrokerRefused, MissingExtra, TaskHandle, TaskQueue
from taskq_core.redact import redact_text
from taskq_core.startup import check_broker
from taskq_django.conf import get_taskqueue
from taskq_django.dbconn import CloseOldConnections
from taskq_django.middleware import TransactionScope
from tests.integrations.django.fixtures import SEEN
from tests.integrations.leaks import leftover_threads, taskq_threads
from tests.security.servers import redis_server

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
MIDDLEWARE = "taskq_django.middleware.TaskqMiddleware"

Configure = Callable[..., TaskQueue]


def drain(tq: TaskQueue) -> None:
    """Run every queued task in this thread's worker, then return."""
    tq.worker(burst=True, handle_signals=False, concurrency=2).run()


# -- routes


def test_routes_answer_as_the_core_does(configure_taskq: Configure, client: Client) -> None:
    configure_taskq()
    health = client.get("/tasks/health")
    assert health.status_code == 200
    assert health["Content-Type"] == "application/json"
    assert "components" in orjson.loads(health.content)
    missing = client.get("/tasks/nope")
    assert missing.status_code == 404
    assert orjson.loads(missing.content)["error"] == "not_found"
    wrong = client.delete("/tasks/health")
    assert wrong.status_code == 405
    assert wrong["Allow"] == "GET, HEAD"
    index = client.get("/tasks/")
    assert index.status_code == 200
    # the index names the mount point it was reached under
    assert any(r["path"].startswith("/tasks/") for r in orjson.loads(index.content)["routes"])


PURGE = "/tasks/failed/default/purge"
ALL = b'{"all": true}'
JSON = "application/json"


def test_admin_routes_need_the_auth_callable(configure_taskq: Configure, client: Client) -> None:
    configure_taskq(AUTH=lambda request: request.headers.get("authorization") == "Bearer ok")
    assert client.post(PURGE, ALL, content_type=JSON).status_code == 401
    no = client.post(PURGE, ALL, content_type=JSON, headers={"Authorization": "Bearer no"})
    assert no.status_code == 403
    done = client.post(PURGE, ALL, content_type=JSON, headers={"Authorization": "Bearer ok"})
    assert done.status_code == 200, done.content


def test_forged_cookie_requests_get_taskq_json_refusals_not_django_html(
    configure_taskq: Configure,
) -> None:
    configure_taskq(AUTH="taskq_django.auth.is_staff")
    browser = Client(enforce_csrf_checks=True, raise_request_exception=False)
    browser.cookies["sessionid"] = "stolen"
    # a cross-site form: refused by the core's check (the view is csrf_exempt), in JSON
    form = browser.post(PURGE, {"all": "true"}, headers={"Origin": "https://evil.example"})
    assert form.status_code == 403
    assert form["Content-Type"] == JSON
    assert orjson.loads(form.content)["error"] == "forbidden"
    # the cookie alone, with a form body and no Origin: not JSON, so 415, in JSON
    cookie_only = browser.post(PURGE, {"all": "true"})
    assert cookie_only.status_code == 415
    assert orjson.loads(cookie_only.content)["error"] == "unsupported_media_type"
    # a token in a header, JSON body: past the cross-site checks, refused by is_staff
    token = browser.post(PURGE, ALL, content_type=JSON, headers={"Authorization": "Bearer x"})
    assert token.status_code == 403
    assert orjson.loads(token.content)["error"] == "forbidden"


def test_auth_is_staff_admits_staff_users(configure_taskq: Configure, db: str) -> None:
    from django.contrib.auth.models import User

    configure_taskq(AUTH="taskq_django.auth:is_staff")
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    try:
        browser = Client(raise_request_exception=False, enforce_csrf_checks=True)
        browser.force_login(staff)
        # the admin's own page posting JSON, same origin: served without a CSRF token
        same = {"Origin": "http://testserver", "Host": "testserver"}
        assert browser.post(PURGE, ALL, content_type=JSON, headers=same).status_code == 200
        assert browser.get("/tasks/failed").status_code == 200  # private read, staff only
        staff.is_staff = False
        staff.save()
        assert browser.post(PURGE, ALL, content_type=JSON, headers=same).status_code == 403
        assert browser.get("/tasks/failed").status_code == 403
    finally:
        staff.delete()


# -- middleware


def test_correlation_id_reaches_the_task(configure_taskq: Configure, client: Client) -> None:
    tq = configure_taskq()
    r = client.get("/enqueue", headers={"X-Request-ID": "req-42"})
    assert r.status_code == 200
    assert r["X-Request-ID"] == "req-42"
    traced = client.get("/enqueue", headers={"traceparent": TRACEPARENT})
    assert traced["X-Request-ID"] == TRACE_ID
    drain(tq)
    first = tq.find(orjson.loads(r.content)["task_id"])
    second = tq.find(orjson.loads(traced.content)["task_id"])
    assert first is not None
    assert second is not None
    assert first.result(timeout=10)["correlation_id"] == "req-42"
    assert second.result(timeout=10) == {"correlation_id": TRACE_ID, "traceparent": TRACEPARENT}
    assert tq.broker.read_counters("routes") == {"/enqueue": 2}


def test_a_new_correlation_id_when_the_request_has_none(
    configure_taskq: Configure, client: Client
) -> None:
    configure_taskq()
    first = client.get("/enqueue")["X-Request-ID"]
    second = client.get("/enqueue")["X-Request-ID"]
    assert first
    assert first != second


@pytest.mark.parametrize("status", [400, 500])
def test_deferred_enqueues_of_a_failed_request_are_dropped(
    configure_taskq: Configure, client: Client, status: int
) -> None:
    tq = configure_taskq(DEFER_ENQUEUE=True)
    r = client.get(f"/enqueue?status={status}")
    assert r.status_code == status
    assert tq.handle(orjson.loads(r.content)["task_id"]).status() == "unknown"
    crashed = client.get("/boom")
    assert crashed.status_code == 500
    assert tq.queues() == tq.settings.queues  # no queue ever received anything
    assert all(tq.broker.get(q, "x") is None for q in tq.queues())


def test_deferred_enqueues_of_a_successful_request_are_sent(
    configure_taskq: Configure, client: Client
) -> None:
    tq = configure_taskq(DEFER_ENQUEUE=True)
    r = client.get("/enqueue")
    assert r.status_code == 200
    assert tq.handle(orjson.loads(r.content)["task_id"]).status() == "queued"


def test_without_defer_enqueues_go_at_once(configure_taskq: Configure, client: Client) -> None:
    tq = configure_taskq()
    r = client.get("/enqueue?status=500")
    assert tq.handle(orjson.loads(r.content)["task_id"]).status() == "queued"


def test_middleware_installed_twice_counts_once(configure_taskq: Configure, client: Client) -> None:
    tq = configure_taskq()
    with override_settings(MIDDLEWARE=[MIDDLEWARE, MIDDLEWARE]):
        r = Client().get("/enqueue", headers={"X-Request-ID": "twice"})
    assert r["X-Request-ID"] == "twice"
    assert tq.broker.read_counters("routes") == {"/enqueue": 1}
    get_taskqueue()
    get_taskqueue()
    assert sum(isinstance(m, CloseOldConnections) for m in tq.middleware) == 1


# -- transactions


def test_enqueue_in_a_transaction_is_sent_on_commit(configure_taskq: Configure, db: str) -> None:
    tq = configure_taskq(DEFER_ENQUEUE=True)
    with TransactionScope(tq, {}, defer=True):
        with transaction.atomic():
            held = tq.enqueue("t.pay", [1])
            with transaction.atomic():  # a savepoint: still waiting for the outer commit
                inner = tq.enqueue("t.pay", [2])
            assert held.status() == "unknown"
            assert inner.status() == "unknown"
        assert held.status() == "queued"
        assert inner.status() == "queued"
        dropped = _enqueue_then_roll_back(tq)
    assert dropped.status() == "unknown"


def _enqueue_then_roll_back(tq: TaskQueue) -> TaskHandle:
    handles: list[TaskHandle] = []

    def fail_after_enqueue() -> None:
        with transaction.atomic():
            handles.append(tq.enqueue("t.pay", [3]))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError, match="roll back"):
        fail_after_enqueue()
    return handles[0]


def test_order_view_commits_then_the_task_is_sent(
    configure_taskq: Configure, client: Client, db: str
) -> None:
    from tests.integrations.django.testapp.models import Order

    tq = configure_taskq(DEFER_ENQUEUE=True)
    placed = client.post("/orders")
    assert placed.status_code == 202
    body = orjson.loads(placed.content)
    rolled_back = client.post("/orders?rollback=1")
    assert rolled_back.status_code == 409
    # committed data whose response then failed: its task follows the data, not the response
    committed = client.post("/orders?status=500")
    assert committed.status_code == 500
    assert tq.handle(orjson.loads(rolled_back.content)["task_id"]).status() == "unknown"
    assert tq.handle(orjson.loads(committed.content)["task_id"]).status() == "queued"
    drain(tq)
    assert tq.handle(body["task_id"]).result(timeout=10) is True
    assert Order.objects.get(id=body["order_id"]).paid


# -- tasks and database connections


def test_tasks_close_their_database_connection(
    configure_taskq: Configure, client: Client, db: str
) -> None:
    tq = configure_taskq()
    placed = client.post("/orders")
    assert placed.status_code == 202
    drain(tq)
    assert tq.handle(orjson.loads(placed.content)["task_id"]).result(timeout=10) is True
    assert SEEN["open_inside"] is True
    # CONN_MAX_AGE = 0: closed after the task, as after a request, not left to the thread
    assert SEEN["connection"].connection is None


def test_stale_connections_are_closed_before_a_task(db: str) -> None:
    conn = connections["default"]
    conn.ensure_connection()
    assert conn.connection is not None
    conn.close_at = time.monotonic() - 1  # past CONN_MAX_AGE: Django would close it now
    with CloseOldConnections().wrap(_message()):
        assert conn.connection is None
    conn.close()


def _message() -> Any:
    from taskq_core.message import Message

    return Message(id="m", task="t.pay", queue="default", args=[], kwargs={}, enqueued_at=0)


# -- embedded workers


def test_embedded_workers_start_with_the_app_and_stop_with_it(
    configure_taskq: Configure, client: Client
) -> None:
    before = taskq_threads()
    tq = configure_taskq(EMBEDDED_WORKERS=1)
    assert not any(t.name == "taskq-embedded" for t in taskq_threads() - before)
    r = client.get("/enqueue", headers={"X-Request-ID": "embedded"})
    assert r.status_code == 200
    task = tq.find(orjson.loads(r.content)["task_id"])
    assert task is not None
    # run by the worker thread that the first request started, not by the test
    assert task.result(timeout=30)["correlation_id"] == "embedded"
    assert any(t.name == "taskq-embedded" for t in taskq_threads() - before)
    taskq_django.stop_workers()
    assert leftover_threads(before) == []


# -- settings, checks, commands


def test_settings_are_read_at_call_time(redis_url: str, prefix: str, client: Client) -> None:
    from taskq_django import conf

    first = {"BROKER_URL": redis_url, "KEY_PREFIX": prefix}
    second = {"BROKER_URL": redis_url, "KEY_PREFIX": f"{prefix}-2"}
    try:
        with override_settings(TASKQ=first):
            a = get_taskqueue()
            assert a.settings.key_prefix == prefix
            with override_settings(TASKQ=second):
                b = get_taskqueue()
                assert b.settings.key_prefix == f"{prefix}-2"
                assert client.get("/tasks/health").status_code == 200
            assert get_taskqueue() is a  # the same configuration, the same TaskQueue
    finally:
        for key in list(conf._built):
            if prefix in key:
                conf._built.pop(key).close()


def _check_messages() -> dict[str, str]:
    return {m.id or "": m.msg for m in run_checks(tags=["taskq"])}


def test_good_settings_pass_the_checks(redis_url: str) -> None:
    with override_settings(TASKQ={"BROKER_URL": redis_url, "WORKER": {"concurrency": 4}}):
        assert _check_messages() == {}
        # every check, the URL patterns of taskq_django.urls included
        assert [m.msg for m in run_checks()] == []


def test_system_checks_name_the_bad_keys() -> None:
    bad = {
        "BROKER_URL": "http://nope",
        "WORKER": {"concurrency": 0},
        "KEY_PREFX": "x",
        "EMBEDDED_WORKERS": -1,
        "DEFER_ENQUEUE": "yes",
        "AUTH": "no.such.module:fn",
    }
    with override_settings(TASKQ=bad):
        messages = [(m.id, m.msg) for m in run_checks(tags=["taskq"])]
    text = "\n".join(f"{i}: {m}" for i, m in messages)
    assert "TASKQ['EMBEDDED_WORKERS'] = -1" in text
    assert "TASKQ['DEFER_ENQUEUE'] = 'yes'" in text
    assert "TASKQ['BROKER_URL']" in text
    assert "TASKQ['WORKER']['concurrency']" in text
    assert "TASKQ['KEY_PREFX']" in text
    assert "did you mean TASKQ['KEY_PREFIX']?" in text
    assert "TASKQ['AUTH'] = 'no.such.module:fn' cannot be imported" in text
    assert {i for i, _ in messages} >= {"taskq.E002", "taskq.E005", "taskq.E006"}


def test_checks_report_a_bad_app_and_a_missing_middleware(redis_url: str) -> None:
    with override_settings(
        TASKQ={"APP": "taskq_django.conf:OWN", "KEY_PREFIX": "x", "DEFER_ENQUEUE": True},
        MIDDLEWARE=[],
    ):
        found = _check_messages()
    assert "must name a TaskQueue, got tuple" in found["taskq.E003"]
    assert "TASKQ['KEY_PREFIX'] would be ignored" in found["taskq.E004"]
    assert "TASKQ['DEFER_ENQUEUE'] has no effect without" in found["taskq.W001"]
    with override_settings(TASKQ=["not", "a", "dict"]):
        assert "settings.TASKQ must be a dict" in _check_messages()["taskq.E001"]


def test_bad_settings_fail_at_use_naming_the_key() -> None:
    from taskq_core.errors import ConfigurationError

    with (
        override_settings(TASKQ={"WORKER": {"concurrency": 0}}),
        pytest.raises(ConfigurationError, match=r"TASKQ\['WORKER'\]\['concurrency'\] = 0"),
    ):
        get_taskqueue()


def test_worker_command_runs_the_queued_tasks(configure_taskq: Configure) -> None:
    tq = configure_taskq()
    handle = tq.enqueue("t.trace")
    call_command("taskq_worker", "--burst", "--concurrency", "2", "--log-level", "warning")
    assert handle.status() == "succeeded"


@pytest.mark.slow
def test_worker_command_exits_4_when_redis_refuses_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As ``taskq worker``: exit code 4 and its one line, not a retry loop (the command runs
    in a thread so that a command retrying for ever fails the test instead of hanging it)."""
    with redis_server("--requirepass", "right-pw") as port:
        tq = TaskQueue(f"redis://:wrong-pw@127.0.0.1:{port}/0", key_prefix="refused")
        try:
            with pytest.raises(BrokerRefused) as refused:
                check_broker(tq)
            codes: list[object] = []

            def command() -> None:
                try:
                    call_command("taskq_worker", "--burst")
                except SystemExit as exc:
                    codes.append(exc.code)

            with override_settings(TASKQ={"APP": tq}):
                thread = threading.Thread(target=command, daemon=True)
                thread.start()
                thread.join(30)
            assert codes, "still running 30 s after Redis refused its password"
            assert codes == [4]
            err = capsys.readouterr().err
            assert f"error: {redact_text(str(refused.value))}" in err
            assert "wrong-pw" not in err
        finally:
            tq.close()


def test_missing_django_raises_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "taskq_django" or m.startswith("taskq_django.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "django", None)
    with pytest.raises(MissingExtra, match=r"pip install 'taskq\[django\]'"):
        importlib.import_module("taskq_django")


def test_a_deferred_send_that_fails_turns_the_response_into_a_500(
    configure_taskq: Configure, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    tq = configure_taskq(DEFER_ENQUEUE=True)

    def down(*args: Any, **kwargs: Any) -> None:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(tq.broker, "enqueue", down)
    # not a 200 for work that was never queued
    assert client.get("/enqueue").status_code == 500
