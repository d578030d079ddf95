"""Prometheus labels come only from known names; diagnostics hide every secret."""

from __future__ import annotations

import time
from collections.abc import Callable

import jsonschema
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskq_core import TaskQueue
from taskq_core.http import Request, schemas
from taskq_core.http.routes import RouteTable
from taskq_core.observability import diagnostics, prometheus


def families(tq: TaskQueue) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(prometheus.exposition(tq).decode()):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_unregistered_task_names_never_become_labels(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    tq.task(name="p.known")(lambda: None)
    tq.enqueue("p.known")
    # figures of names this process does not know, as a foreign worker would write them
    tq.broker.settle([], 0, {"default": {"ok|evil\"name": 2, "started|evil\"name": 2,
                                         "runtime_bucket|evil\"name|1": 2}})  # fmt: skip
    got = families(tq)
    tasks = {labels["task"] for labels, _ in got["taskq_tasks_enqueued_total"]}
    assert tasks == {"p.known", "_other"}
    other = {"queue": "default", "task": "_other"}
    assert (other, 2.0) in got["taskq_tasks_started_total"]
    assert (other, 2.0) in got["taskq_task_runtime_seconds_count"]
    assert {labels["queue"] for labels, _ in got["taskq_queue_depth"]} == {
        "high", "default", "low"
    }  # fmt: skip
    depth = {labels["queue"]: v for labels, v in got["taskq_queue_depth"]}
    assert depth["default"] == 1
    # names follow the conventions: _total counters, _seconds and _bytes units
    assert "taskq_task_wait_seconds_bucket" in got
    assert "taskq_worker_rss_bytes" in got
    assert "taskq_lease_expired_total" in got


def test_diagnostics_report_hides_secrets(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app(
        monitoring={"alert_webhook": "https://hooks.example.com/services/T0/B0/s3cr3tT0k3n"}
    )
    url = tq.settings.broker_url
    tq.settings.broker_url = url.replace("redis://", "redis://user:pa55word@")
    tq.task(name="d.fail", max_retries=0)(lambda: 1 / 0)
    tq.enqueue("d.fail")
    tq.worker(burst=True, handle_signals=False).run()
    report = diagnostics.report(tq)
    text = orjson.dumps(report).decode()
    assert "pa55word" not in text
    assert "s3cr3tT0k3n" not in text
    assert report["config"]["monitoring"]["alert_webhook"] == "***"
    assert report["config"]["broker_url"].startswith("redis://user:***@")
    assert report["versions"]["taskq"]
    assert report["versions"]["redis"]
    assert report["redis"]["redis_version"]
    assert "used_memory" in report["redis"]
    [failure] = report["recent_failures"]
    assert failure["error"]["type"] == "ZeroDivisionError"
    assert "traceback" not in failure["error"]
    assert [t["name"] for t in report["registry"]["tasks"]] == ["d.fail"]
    assert "MetricsMiddleware" in report["middleware"]


def test_autoscaler_records_reach_the_route_and_prometheus(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    publish = pytest.importorskip("taskq_core.supervisor.publish")
    tq = make_app(broker_kind)
    now = int(time.time() * 1000)
    for sid, processes, target in (("sup-a", 2, 3), ("sup-b", 1, 1)):
        publish.write_autoscaler(tq, publish.make_record(
            supervisor=sid, host="h", at_ms=now, processes=processes, low=1, high=4,
            inputs={"backlog": 10}, decision="up" if target > processes else "hold",
            target=target, reason="test",
        ))  # fmt: skip
    # supervisors name their hosts: a private route, opened here
    route = RouteTable(tq, expose_private=["hosts"]).dispatch(Request("GET", "/metrics/autoscaler"))
    body = orjson.loads(route.body)
    jsonschema.Draft202012Validator(schemas.AUTOSCALER).validate(body)
    assert [s["supervisor"] for s in body["supervisors"]] == ["sup-a", "sup-b"]
    got = families(tq)
    assert got["taskq_autoscaler_processes"] == [({}, 3.0)]
    assert got["taskq_autoscaler_target"] == [({}, 4.0)]


def test_a_counted_hand_back_is_a_counter_and_a_prometheus_metric(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """A hand-back that counts as a delivery (a crashed process, the poison rule) shows in
    the queue's counters, the totals and Prometheus, apart from a graceful one."""
    from taskq_core.observability import facade

    tq = make_app(broker_kind)
    tq.task(name="p.handed")(lambda: None)
    for _ in range(3):
        tq.enqueue("p.handed")
    a, b, c = tq.broker.fetch(["default"], 3, 0, alone=True)[0].deliveries
    assert tq.broker.release([a, b], "crashed", "the worker process died") == 2
    assert tq.broker.release([c]) == 1  # graceful: not counted
    got = families(tq)
    assert ({"queue": "default"}, 2.0) in got["taskq_released_counted_total"]
    assert ({"queue": "default"}, 1.0) in got["taskq_released_total"]
    (queue,) = [q for q in facade.queues(tq)["queues"] if q["name"] == "default"]
    assert (queue["counters"]["released_counted"], queue["counters"]["released"]) == (2, 1)


def test_the_route_offers_openmetrics_when_the_scraper_asks(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    """Prometheus sends an Accept header preferring OpenMetrics: the route answers in it (a
    valid exposition ending in ``# EOF``); without one it answers the 0.0.4 text format."""
    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as openmetrics_families,
    )

    tq = make_app(broker_kind)

    @tq.task(name="obs.om")
    def om() -> None:
        pass

    om.enqueue()
    table = RouteTable(tq)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    asked = table.dispatch(Request("GET", "/metrics/prometheus", headers={"accept": accept}))
    assert asked.status == 200
    assert asked.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    text = asked.body.decode()
    assert text.endswith("# EOF\n")
    families = openmetrics_families(text)  # type: ignore[no-untyped-call]  # unannotated
    names = {s.name for fam in families for s in fam.samples}
    assert "taskq_tasks_enqueued_total" in names
    plain = table.dispatch(Request("GET", "/metrics/prometheus"))
    assert plain.headers["content-type"] == prometheus.CONTENT_TYPE
    assert "# EOF" not in plain.body.decode()
    help_line = next(
        line
        for line in plain.body.decode().splitlines()
        if line.startswith("# HELP taskq_tasks_timed_out_total")
    )
    assert "hard" in help_line
    assert "soft" in help_line
