"""Every SLA rule fires with the right fields and clears; state, history and sinks.

Each test turns on only the rule it checks, and drives time with a ManualClock (windows,
ages and wait times read the application's clock)."""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from taskq_core import ManualClock, TaskQueue
from taskq_core.observability import alerts
from taskq_core.observability.heartbeat import HeartbeatMiddleware

OFF: dict[str, Any] = {
    "max_wait_p95": None,
    "max_runtime_p95": None,
    "max_error_rate": None,
    "max_backlog": None,
    "max_oldest_age": None,
    "max_worker_rss_mb": None,
    "alert_no_worker": False,
    "sla_window": 60.0,
}


@pytest.fixture
def app(make_app: Callable[..., TaskQueue]) -> Callable[..., TaskQueue]:
    def make(kind: str = "memory", **rules: Any) -> TaskQueue:
        tq = make_app(kind, monitoring={**OFF, **rules}, retry={"max_retries": 0})
        tq.clock = ManualClock()
        return tq

    return make


def clock(tq: TaskQueue) -> ManualClock:
    assert isinstance(tq.clock, ManualClock)
    return tq.clock


def run_worker(tq: TaskQueue) -> None:
    tq.worker(burst=True, handle_signals=False).run()


def active(tq: TaskQueue) -> dict[str, dict[str, Any]]:
    return {a["key"]: a for a in alerts.state(tq)["active"]}


def evaluate(tq: TaskQueue) -> dict[str, dict[str, Any]]:
    assert alerts.evaluate(tq, force=True)
    return active(tq)


def check_fields(a: dict[str, Any], rule: str, severity: str, subject: dict[str, str]) -> None:
    assert a["rule"] == rule
    assert a["severity"] == severity
    assert a["subject"] == subject
    assert a["value"] > a["threshold"] or rule == "memory_leak"
    assert a["first_seen"] <= a["last_seen"]
    assert a["unit"]
    assert a["message"]


def test_queue_wait_p95_fires_and_clears(app: Callable[..., TaskQueue]) -> None:
    tq = app(max_wait_p95=1.0)
    tq.task(name="a.noop")(lambda: None)
    assert evaluate(tq) == {}  # first snapshot: no window yet, nothing judged
    for _ in range(3):
        tq.enqueue("a.noop")
    clock(tq).advance(5)  # every task waits 5 s
    run_worker(tq)
    clock(tq).advance(10)
    found = evaluate(tq)
    a = found["queue_wait_p95:queue=default"]
    check_fields(a, "queue_wait_p95", "warning", {"queue": "default"})
    assert a["threshold"] == 1.0
    assert 2.5 <= a["value"] <= 5.0  # the 95th percentile estimate, inside the 5 s bucket
    clock(tq).advance(61)  # the slow tasks leave the window
    assert evaluate(tq) == {}


def test_runtime_p95_fires_and_clears(app: Callable[..., TaskQueue]) -> None:
    tq = app(max_runtime_p95=0.01)
    tq.task(name="a.slow")(lambda: time.sleep(0.06))
    evaluate(tq)
    tq.enqueue("a.slow")
    run_worker(tq)
    clock(tq).advance(10)
    a = evaluate(tq)["runtime_p95:task=a.slow"]
    check_fields(a, "runtime_p95", "warning", {"task": "a.slow"})
    assert a["value"] >= 0.05
    clock(tq).advance(61)
    assert evaluate(tq) == {}


def test_error_rate_fires_when_enough_ran_and_clears(app: Callable[..., TaskQueue]) -> None:
    tq = app(max_error_rate=0.5, error_rate_min_tasks=3)

    @tq.task(name="a.bad")
    def bad() -> None:
        raise ValueError("no")

    tq.task(name="a.good")(lambda: None)
    evaluate(tq)
    for _ in range(2):
        tq.enqueue("a.bad")
    run_worker(tq)
    clock(tq).advance(10)
    assert evaluate(tq) == {}  # two executions: under error_rate_min_tasks
    tq.enqueue("a.bad")
    tq.enqueue("a.good")
    run_worker(tq)
    clock(tq).advance(10)
    a = evaluate(tq)["error_rate:queue=default"]
    check_fields(a, "error_rate", "critical", {"queue": "default"})
    assert a["value"] == 0.75  # 3 failed of 4, since the first snapshot
    assert a["threshold"] == 0.5
    clock(tq).advance(61)
    assert evaluate(tq) == {}


@pytest.mark.parametrize("kind", ["redis", "memory"])
def test_backlog_fires_keeps_first_seen_and_clears(
    app: Callable[..., TaskQueue], kind: str
) -> None:
    tq = app(kind, max_backlog=2)
    tq.task(name="a.noop")(lambda: None)
    for _ in range(3):
        tq.enqueue("a.noop")
    first = evaluate(tq)["backlog:queue=default"]
    check_fields(first, "backlog", "warning", {"queue": "default"})
    assert (first["value"], first["threshold"]) == (3, 2)
    tq.enqueue("a.noop")
    clock(tq).advance(7)
    again = evaluate(tq)["backlog:queue=default"]
    assert again["first_seen"] == first["first_seen"]
    assert again["last_seen"] == first["last_seen"] + 7000
    assert again["value"] == 4
    run_worker(tq)
    assert evaluate(tq) == {}
    history = alerts.state(tq)["history"]
    assert [e["event"] for e in history] == ["cleared", "fired"]  # newest first
    assert history[0]["key"] == "backlog:queue=default"


def test_oldest_age_fires_and_clears(app: Callable[..., TaskQueue]) -> None:
    tq = app(max_oldest_age=10.0)
    tq.task(name="a.noop")(lambda: None)
    tq.enqueue("a.noop")
    assert evaluate(tq) == {}
    clock(tq).advance(11)
    a = evaluate(tq)["oldest_age:queue=default"]
    check_fields(a, "oldest_age", "warning", {"queue": "default"})
    assert a["value"] == 11.0
    run_worker(tq)
    assert evaluate(tq) == {}


def test_no_worker_fires_and_clears_when_a_worker_serves_the_queue(
    app: Callable[..., TaskQueue],
) -> None:
    tq = app(alert_no_worker=True)
    tq.task(name="a.noop")(lambda: None)
    assert evaluate(tq) == {}  # nothing waits: no alert
    tq.enqueue("a.noop")
    a = evaluate(tq)["no_worker:queue=default"]
    check_fields(a, "no_worker", "critical", {"queue": "default"})
    worker = tq.worker(queues=["default"])
    tq.broker.put_heartbeat(worker.id, orjson.dumps({"id": worker.id, "queues": ["default"]}),
                            60_000, 0)  # fmt: skip
    assert evaluate(tq) == {}


def test_worker_rss_fires_and_clears_when_the_worker_goes(app: Callable[..., TaskQueue]) -> None:
    tq = app(max_worker_rss_mb=1.0)
    worker = tq.worker()
    hb = HeartbeatMiddleware(tq.settings.monitoring)
    record = hb.record(worker)
    tq.broker.put_heartbeat(worker.id, orjson.dumps(record), 60_000, 0)
    a = evaluate(tq)[f"worker_rss:worker={worker.id}"]
    check_fields(a, "worker_rss", "warning", {"worker": worker.id})
    assert a["value"] == record["rss_bytes"]
    assert a["threshold"] == 1024 * 1024
    tq.broker.drop_heartbeat(worker.id)
    assert evaluate(tq) == {}


def test_memory_leak_fires_and_clears(app: Callable[..., TaskQueue]) -> None:
    tq = app()
    record = {"id": "w1", "queues": ["default"], "rss_bytes": 1,
              "memory": {"leaking": True, "slope_bytes_per_hour": 200 * 1024 * 1024}}  # fmt: skip
    tq.broker.put_heartbeat("w1", orjson.dumps(record), 60_000, 0)
    a = evaluate(tq)["memory_leak:worker=w1"]
    check_fields(a, "memory_leak", "warning", {"worker": "w1"})
    assert a["value"] == 200 * 1024 * 1024
    assert a["threshold"] == 50 * 1024 * 1024
    record["memory"] = {"leaking": False}
    tq.broker.put_heartbeat("w1", orjson.dumps(record), 60_000, 0)
    assert evaluate(tq) == {}


def test_sinks_get_every_event_and_a_failing_sink_is_skipped(
    app: Callable[..., TaskQueue], caplog: pytest.LogCaptureFixture
) -> None:
    tq = app(max_backlog=1)
    seen: list[dict[str, Any]] = []

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("sink down")

    tq.alert_sinks += [broken, seen.append]
    tq.task(name="a.noop")(lambda: None)
    tq.enqueue("a.noop")
    tq.enqueue("a.noop")
    with caplog.at_level(logging.INFO, logger="taskq.alerts"):
        evaluate(tq)
        evaluate(tq)  # still active: no second "fired"
        run_worker(tq)
        evaluate(tq)
    assert [e["event"] for e in seen] == ["fired", "cleared"]
    assert seen[0]["rule"] == "backlog"
    assert seen[0]["value"] == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "taskq.alerts"]
    assert any(m.startswith("alert fired: queue default ready tasks") for m in messages)
    assert any(m.startswith("alert cleared:") for m in messages)
    assert any("sink" in m and "failed" in m for m in messages)


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append(orjson.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    _Hook.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook/secret-token", _Hook.received
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_webhook_sink_posts_each_event(
    app: Callable[..., TaskQueue], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    assert alerts.post_webhook(url, {"event": "fired", "key": "k"})
    assert received == [{"event": "fired", "key": "k"}]
    tq = app(max_backlog=1, alert_webhook=url)
    tq.task(name="a.noop")(lambda: None)
    tq.enqueue("a.noop")
    tq.enqueue("a.noop")
    evaluate(tq)
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # the sink posts from a thread of its own
    assert received[1]["event"] == "fired"
    assert received[1]["rule"] == "backlog"


def test_webhook_failure_never_logs_the_url(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="taskq.alerts"):
        assert not alerts.post_webhook("http://127.0.0.1:9/hook/s3cret", {"e": 1}, timeout=2)
    assert caplog.records
    assert "s3cret" not in caplog.text


def test_evaluation_runs_once_per_interval_for_the_cluster(
    make_app: Callable[..., TaskQueue],
) -> None:
    a = make_app(monitoring={"alert_interval": 60})
    b = make_app(monitoring={"alert_interval": 60})
    assert alerts.evaluate(a) is True
    assert alerts.evaluate(b) is False  # another process's turn is not due yet
    assert alerts.evaluate(b, force=True) is True


def test_history_is_bounded(app: Callable[..., TaskQueue]) -> None:
    tq = app(max_backlog=1, alert_history=3)
    tq.task(name="a.noop")(lambda: None)
    for _ in range(3):
        tq.enqueue("a.noop")
        tq.enqueue("a.noop")
        evaluate(tq)
        run_worker(tq)
        evaluate(tq)
    assert len(alerts.state(tq)["history"]) == 3
