"""An application's own counters, gauges and histograms (``tq.metrics``,
observability/custom.py), on both brokers: updates from the tasks of two workers add up
cluster-wide, gauges keep the value set last, bad declarations and updates are refused
with an error naming the problem, nothing buffered is lost at a clean stop or a failed
write, and the figures reach ``/metrics`` and the Prometheus exposition."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskq_core import ManualClock, TaskQueue
from taskq_core.errors import InvalidMetric
from taskq_core.http import schemas
from taskq_core.observability import custom, custom_report, custom_rules, facade, prometheus
from tests.inthread import InThread, wait_for

FAST_TICKS = {"lease_seconds": 3.0, "renew_interval": 0.5}


@pytest.fixture
def twin() -> Iterator[Callable[[TaskQueue], TaskQueue]]:
    """``twin(tq)``: a second application on ``tq``'s broker, as another process would be
    (its own metrics and buffer); its metrics thread is stopped afterwards."""
    made: list[TaskQueue] = []

    def make(tq: TaskQueue, **options: Any) -> TaskQueue:
        other = TaskQueue(tq.broker, key_prefix=tq.settings.key_prefix, **options)
        made.append(other)
        return other

    yield make
    for app in made:
        app.metrics.close()


def by_name(tq: TaskQueue) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in custom_report.report(tq)}


def values(tq: TaskQueue, name: str) -> dict[tuple[str, ...], Any]:
    """A counter's or gauge's value per label set (label values in declared order)."""
    metric = by_name(tq).get(name)
    if metric is None:
        return {}
    return {tuple(s["labels"].values()): s["value"] for s in metric["series"]}


def declare(tq: TaskQueue) -> tuple[custom.Counter, custom.Gauge, custom.Histogram]:
    return (
        tq.metrics.counter("emails_sent", "Emails sent", labels=("provider",)),
        tq.metrics.gauge("upstream_backlog", "Items waiting upstream"),
        tq.metrics.histogram(
            "upstream_latency_seconds", "Upstream latency", buckets=(0.01, 0.1, 1, 10)
        ),
    )


def test_updates_from_two_workers_add_up_cluster_wide(
    make_app: Callable[..., TaskQueue], broker_kind: str, twin: Callable[..., TaskQueue]
) -> None:
    first = make_app(broker_kind, worker=FAST_TICKS)
    second = twin(first, worker=FAST_TICKS)
    ran_by: set[str] = set()
    for app in (first, second):
        app.metrics.flush_interval = 3600  # only the workers' ticks flush
        emails, _, latency = declare(app)

        @app.task(name="c.send")
        async def send(provider: str, emails: Any = emails, latency: Any = latency) -> None:
            ran_by.add(threading.current_thread().name)  # the worker's id (tests/inthread.py)
            emails.inc(provider=provider)
            latency.observe(0.05)

    # each application's worker serves a queue of its own: both certainly contribute
    task = first.get_task("c.send")
    for queue in ("a", "b"):
        for provider in ["ses"] * 12 + ["smtp"] * 3:
            task.options(queue=queue).enqueue(provider)
    workers = [InThread(first, queues=["a"]), InThread(second, queues=["b"])]
    try:
        # written by the workers' ticks, while they still run
        wait_for(
            lambda: values(first, "emails_sent") == {("ses",): 24, ("smtp",): 6},
            15,
            "both workers' counts in the broker",
        )
    finally:
        for w in workers:
            w.stop()
    assert ran_by == {w.worker.id for w in workers}
    # the stops wrote nothing twice
    assert values(first, "emails_sent") == {("ses",): 24, ("smtp",): 6}
    [series] = by_name(second)["upstream_latency_seconds"]["series"]
    assert series["count"] == 30
    assert series["sum"] == pytest.approx(1.5)
    assert [b["count"] for b in series["buckets"]] == [0, 30, 30, 30, 30]


def test_a_clean_stop_loses_nothing(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)
    tq.metrics.flush_interval = 3600  # no periodic flush: only the stop writes
    emails, backlog, latency = declare(tq)

    @tq.task(name="c.sync")
    def sync_task(n: int) -> None:
        emails.inc(n, provider="ses")
        latency.observe(0.5)

    @tq.task(name="c.async")
    async def async_task(n: int) -> None:
        emails.inc(n, provider="smtp")
        backlog.set(n)

    for n in range(1, 6):
        sync_task.enqueue(n)
        async_task.enqueue(n)
    tq.worker(burst=True, handle_signals=False).run()  # stops before its first tick
    assert values(tq, "emails_sent") == {("ses",): 15, ("smtp",): 15}
    assert values(tq, "upstream_backlog")[()] in {1, 2, 3, 4, 5}
    assert by_name(tq)["upstream_latency_seconds"]["series"][0]["count"] == 5


def test_histogram_buckets_sum_and_estimates(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    _, _, latency = declare(tq)
    for v in (0.005, 0.05, 0.5, 5, 50):
        latency.observe(v)
    latency.observe(0.01)  # on a bound: counted in that bucket (le means <=)
    tq.metrics.flush()
    metric = by_name(tq)["upstream_latency_seconds"]
    assert metric["buckets"] == [0.01, 0.1, 1.0, 10.0]
    [s] = metric["series"]
    assert s["buckets"] == [
        {"le": "0.01", "count": 2},
        {"le": "0.1", "count": 3},
        {"le": "1.0", "count": 4},
        {"le": "10.0", "count": 5},
        {"le": "+Inf", "count": 6},
    ]
    assert s["count"] == 6
    assert s["sum"] == pytest.approx(55.565)
    assert s["avg"] == pytest.approx(55.565 / 6, abs=1e-6)
    # rank 3 of 6 is the last of (0.01, 0.1]; rank 5.7 lies past the last bound
    assert s["p50"] == pytest.approx(0.1)
    assert s["p99"] == 10.0
    # stored non-cumulative, added to by each flush
    latency.observe(0.05)
    tq.metrics.flush()
    [s] = by_name(tq)["upstream_latency_seconds"]["series"]
    assert [b["count"] for b in s["buckets"]] == [2, 4, 5, 6, 7]


def test_a_gauge_keeps_the_value_set_last_anywhere(
    make_app: Callable[..., TaskQueue], broker_kind: str, twin: Callable[..., TaskQueue]
) -> None:
    first = make_app(broker_kind, clock=ManualClock(1_800_000_000))
    second = twin(first, clock=ManualClock(1_800_000_000))
    g1 = first.metrics.gauge("pool_size", "Pool size", labels=("pool",))
    g2 = second.metrics.gauge("pool_size", "Pool size", labels=("pool",))
    g1.set(5, pool="db")
    second.clock.advance(10)  # type: ignore[attr-defined]
    g2.set(7, pool="db")
    second.metrics.flush()
    first.metrics.flush()  # arrives last, but was set first: it does not replace 7
    [series] = by_name(first)["pool_size"]["series"]
    assert series == {"labels": {"pool": "db"}, "value": 7, "updated_at": 1_800_000_010_000}
    first.clock.advance(20)  # type: ignore[attr-defined]
    g1.set(9.5, pool="db")
    g1.set(3, pool="cache")
    first.metrics.flush()
    assert values(second, "pool_size") == {("db",): 9.5, ("cache",): 3}


def test_a_metric_registered_elsewhere_is_read_from_its_stored_declaration(
    make_app: Callable[..., TaskQueue], broker_kind: str, twin: Callable[..., TaskQueue]
) -> None:
    web = make_app(broker_kind)
    worker_app = twin(web)
    worker_app.metrics.counter("charges", "Card charges", labels=("outcome",)).inc(outcome="ok")
    worker_app.metrics.histogram("sizes", "Sizes", buckets=(1, 2))
    worker_app.metrics.flush()
    metrics = by_name(web)  # registers nothing itself
    assert metrics["charges"]["help"] == "Card charges"
    assert metrics["charges"]["series"] == [{"labels": {"outcome": "ok"}, "value": 1}]
    assert metrics["sizes"]["series"] == []  # declared, never observed


@pytest.mark.parametrize(
    ("call", "problem"),
    [
        (lambda c: c.inc(), "missing provider"),
        (lambda c: c.inc(provider="ses", region="eu"), "unknown region"),
        (lambda c: c.inc(region="eu"), "missing provider; unknown region"),
        (lambda c: c.inc(provider=3), "label provider must be a string, got int"),
        (lambda c: c.inc(provider=["x"]), "label provider must be a string, got list"),
        (lambda c: c.inc(provider="x" * 101), "label provider longer than 100 characters"),
        (lambda c: c.inc(-1, provider="ses"), "a counter only goes up"),
        (lambda c: c.inc(float("nan"), provider="ses"), "must be a finite number"),
        (lambda c: c.inc(True, provider="ses"), "must be a finite number"),
        (lambda c: c.inc("2", provider="ses"), "must be a finite number"),
    ],
)
def test_bad_updates_are_refused_naming_the_problem(
    make_app: Callable[..., TaskQueue], call: Callable[[custom.Counter], None], problem: str
) -> None:
    tq = make_app("memory")
    emails, _, _ = declare(tq)
    with pytest.raises(InvalidMetric, match="emails_sent") as caught:
        call(emails)
    assert problem in str(caught.value)
    assert tq.metrics._amounts == {}  # nothing buffered


def test_gauges_and_histograms_refuse_values_that_are_not_finite(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app("memory")
    _, backlog, latency = declare(tq)
    with pytest.raises(InvalidMetric, match=r"upstream_backlog.*finite number, got inf"):
        backlog.set(float("inf"))
    with pytest.raises(InvalidMetric, match=r"upstream_latency_seconds.*finite number"):
        latency.observe(float("nan"))
    with pytest.raises(InvalidMetric, match=r"upstream_backlog.*takes the labels \(\)"):
        backlog.set(1, pool="x")


def test_the_cardinality_guard_stops_new_label_sets_past_the_limit(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app("memory")
    users = tq.metrics.counter("logins", "Logins", labels=("user",))
    for i in range(custom_rules.MAX_SERIES):
        users.inc(user=f"u{i}")
    with pytest.raises(InvalidMetric, match="'logins' has 1000 label sets already, the limit"):
        users.inc(user="one-more")
    users.inc(user="u7")  # a label set it has already seen still counts
    assert tq.metrics._amounts['c|logins|["u7"]'] == 2


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "letters, digits and _ only"),
        ("1st", "not starting with a digit"),
        ("emails-sent", "letters, digits and _ only"),
        ("émails", "letters, digits and _ only"),
        (3, "letters, digits and _ only"),
        ("x" * 101, "at most 100 characters, got 101"),
        ("emails_total", "ends with '_total', a suffix Prometheus reads"),
        ("latency_bucket", "ends with '_bucket'"),
        ("latency_count", "ends with '_count'"),
    ],
)
def test_bad_names_are_refused(make_app: Callable[..., TaskQueue], name: Any, problem: str) -> None:
    tq = make_app("memory")
    with pytest.raises(InvalidMetric, match="metric name") as caught:
        tq.metrics.counter(name, "x")
    assert problem in str(caught.value)
    assert tq.metrics.declarations() == []


@pytest.mark.parametrize(
    ("declare_it", "problem"),
    [
        (lambda m: m.counter("c", labels="provider"), "labels must be a tuple of label names"),
        (lambda m: m.counter("c", labels=tuple("abcdef")), "at most 5 labels, got 6"),
        (lambda m: m.counter("c", labels=("a-b",)), "label name 'a-b'"),
        (lambda m: m.counter("c", labels=("le",)), "label name 'le' is reserved"),
        (lambda m: m.gauge("c", labels=("__name",)), "label name '__name' is reserved"),
        (lambda m: m.counter("c", labels=("a", "a")), "label names repeat"),
        (lambda m: m.counter("c", 42), "help must be a string"),
        (lambda m: m.histogram("h", buckets=(1, 0.5)), "bucket bounds must increase"),
        (lambda m: m.histogram("h", buckets=(1, 1)), "bucket bounds must increase"),
        (lambda m: m.histogram("h", buckets=(0, 1)), "bucket bound 0 must be a finite number"),
        (lambda m: m.histogram("h", buckets=(1, float("inf"))), "bucket bound inf"),
        (lambda m: m.histogram("h", buckets=()), "1 to 50 buckets, got 0"),
        (lambda m: m.histogram("h", buckets="1,2"), "buckets must be a sequence of numbers"),
        (lambda m: m.histogram("h", buckets=range(1, 60)), "1 to 50 buckets, got 59"),
    ],
)
def test_bad_declarations_are_refused(
    make_app: Callable[..., TaskQueue],
    declare_it: Callable[[custom.Metrics], object],
    problem: str,
) -> None:
    tq = make_app("memory")
    with pytest.raises(InvalidMetric) as caught:
        declare_it(tq.metrics)
    assert problem in str(caught.value)
    assert tq.metrics.declarations() == []


def test_registering_again_returns_the_same_metric_or_refuses_another_shape(
    make_app: Callable[..., TaskQueue],
) -> None:
    tq = make_app("memory")
    emails, backlog, latency = declare(tq)
    assert tq.metrics.counter("emails_sent", "Other help", labels=["provider"]) is emails
    assert tq.metrics.gauge("upstream_backlog") is backlog
    again = tq.metrics.histogram("upstream_latency_seconds", buckets=(0.01, 0.1, 1.0, 10.0))
    assert again is latency
    assert tq.metrics.get("emails_sent") is emails
    with pytest.raises(InvalidMetric, match="already registered as a counter with labels"):
        tq.metrics.gauge("emails_sent", labels=("provider",))
    with pytest.raises(InvalidMetric, match=r"labels \(provider\), not as a counter with labels"):
        tq.metrics.counter("emails_sent", labels=("provider", "region"))
    with pytest.raises(InvalidMetric, match=r"not as a histogram with labels .* buckets"):
        tq.metrics.histogram("upstream_latency_seconds", buckets=(1, 2))


def test_a_failed_write_keeps_the_figures_for_the_next(
    make_app: Callable[..., TaskQueue], broker_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tq = make_app(broker_kind)
    emails, backlog, latency = declare(tq)
    emails.inc(2, provider="ses")
    backlog.set(4)
    latency.observe(0.2)
    real = tq.broker.metrics_write

    def down(batch: object) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tq.broker, "metrics_write", down)
    with pytest.raises(ConnectionError):
        tq.metrics.flush()
    emails.inc(provider="ses")  # meanwhile
    monkeypatch.setattr(tq.broker, "metrics_write", real)
    tq.metrics.flush()
    assert values(tq, "emails_sent") == {("ses",): 3}
    assert values(tq, "upstream_backlog") == {(): 4}
    assert by_name(tq)["upstream_latency_seconds"]["series"][0]["count"] == 1
    assert tq.metrics._take() is None  # nothing left, nothing written twice


def test_large_flushes_go_in_bounded_writes(
    make_app: Callable[..., TaskQueue], broker_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    tq = make_app(broker_kind)
    monkeypatch.setattr(custom, "WRITE_CHUNK", 7)
    sizes: list[int] = []
    real = tq.broker.metrics_write

    def write(batch: Any) -> None:
        sizes.append(len(batch))
        real(batch)

    monkeypatch.setattr(tq.broker, "metrics_write", write)
    hits = tq.metrics.counter("hits", labels=("page",))
    for i in range(30):
        hits.inc(i, page=f"p{i}")
    tq.metrics.flush()
    assert len(sizes) == 5
    assert max(sizes) <= 7
    assert sum(values(tq, "hits").values()) == sum(range(30))


def test_web_code_is_flushed_by_the_metrics_thread_and_at_close(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    emails, _, _ = declare(tq)
    tq.metrics.flush_interval = 0.05
    emails.inc(provider="ses")  # outside any worker: the thread starts
    wait_for(lambda: values(tq, "emails_sent") == {("ses",): 1}, 10, "the thread's flush")
    tq.metrics.flush_interval = 3600
    tq.metrics.close()  # stops the thread (and writes nothing: nothing is buffered)
    emails.inc(provider="ses")
    started = tq.metrics._thread  # the next update started it again
    assert started is not None
    tq.metrics.close()  # and closing writes the update
    assert values(tq, "emails_sent") == {("ses",): 2}
    assert tq.metrics._thread is None
    assert not started[0].is_alive()


def test_async_flush_and_close(make_app: Callable[..., TaskQueue], broker_kind: str) -> None:
    tq = make_app(broker_kind)
    emails, backlog, _ = declare(tq)
    tq.metrics.flush_interval = 3600

    async def web_handler() -> None:
        emails.inc(provider="ses")
        await tq.metrics.aflush()
        backlog.set(11)
        await tq.aclose()  # writes it, then closes this loop's connections

    asyncio.run(web_handler())
    assert values(tq, "emails_sent") == {("ses",): 1}
    assert values(tq, "upstream_backlog") == {(): 11}


def test_prometheus_exposition_has_the_right_types_and_values(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    emails, backlog, latency = declare(tq)
    emails.inc(3, provider="ses")
    emails.inc(provider='a "quoted"\nname')
    backlog.set(42)
    latency.observe(0.05)
    latency.observe(5)
    tq.metrics.flush()
    text = prometheus.exposition(tq).decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    prefixed = [n for n in fams if n.startswith("taskq_custom_")]
    assert sorted(prefixed) == [
        "taskq_custom_emails_sent",
        "taskq_custom_upstream_backlog",
        "taskq_custom_upstream_latency_seconds",
    ]  # no taskq family uses the prefix
    counter = fams["taskq_custom_emails_sent"]
    assert counter.type == "counter"
    assert counter.documentation == "Emails sent"
    assert {(s.name, s.labels["provider"], s.value) for s in counter.samples} == {
        ("taskq_custom_emails_sent_total", "ses", 3.0),
        ("taskq_custom_emails_sent_total", 'a "quoted"\nname', 1.0),
    }
    gauge = fams["taskq_custom_upstream_backlog"]
    assert gauge.type == "gauge"
    assert [(s.name, s.labels, s.value) for s in gauge.samples] == [
        ("taskq_custom_upstream_backlog", {}, 42.0)
    ]
    hist = fams["taskq_custom_upstream_latency_seconds"]
    assert hist.type == "histogram"
    got = {(s.name, s.labels.get("le")): s.value for s in hist.samples}
    assert got == {
        ("taskq_custom_upstream_latency_seconds_bucket", "0.01"): 0.0,
        ("taskq_custom_upstream_latency_seconds_bucket", "0.1"): 1.0,
        ("taskq_custom_upstream_latency_seconds_bucket", "1.0"): 1.0,
        ("taskq_custom_upstream_latency_seconds_bucket", "10.0"): 2.0,
        ("taskq_custom_upstream_latency_seconds_bucket", "+Inf"): 2.0,
        ("taskq_custom_upstream_latency_seconds_count", None): 2.0,
        ("taskq_custom_upstream_latency_seconds_sum", None): pytest.approx(5.05),
    }
    # the OpenMetrics encoding parses too
    body, _ = prometheus.negotiated(tq, "application/openmetrics-text; version=1.0.0")
    assert b"taskq_custom_emails_sent_total" in body
    assert body.endswith(b"# EOF\n")


def test_the_metrics_route_shows_them_under_its_schema(
    make_app: Callable[..., TaskQueue], broker_kind: str
) -> None:
    tq = make_app(broker_kind)
    emails, backlog, latency = declare(tq)
    tq.metrics.counter("idle", "Never counted")
    emails.inc(provider="ses")
    backlog.set(-2.5)
    latency.observe(0.2)
    tq.metrics.flush()
    body = facade.metrics(tq)
    jsonschema.validate(body, schemas.METRICS)
    got = {m["name"]: m for m in body["custom"]}
    assert list(got) == ["emails_sent", "idle", "upstream_backlog", "upstream_latency_seconds"]
    assert got["emails_sent"] == {
        "name": "emails_sent",
        "kind": "counter",
        "help": "Emails sent",
        "labels": ["provider"],
        "series": [{"labels": {"provider": "ses"}, "value": 1}],
    }
    assert got["idle"]["series"] == []
    [gauge] = got["upstream_backlog"]["series"]
    assert gauge["value"] == -2.5
    assert isinstance(gauge["updated_at"], int)
    [hist] = got["upstream_latency_seconds"]["series"]
    assert {k: hist[k] for k in ("count", "sum", "avg")} == {"count": 1, "sum": 0.2, "avg": 0.2}
    assert 0.1 < hist["p50"] < 1.0
    # a histogram's series does not validate as a counter's, nor the other way round
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**body, "custom": [{**got["emails_sent"], "series": [{}]}]},
                            schemas.METRICS)  # fmt: skip


def test_an_isolated_app_keeps_its_tests_metrics_apart(make_app: Callable[..., TaskQueue]) -> None:
    from taskq_core.testing import isolated

    tq = make_app("memory")
    tq.metrics.flush_interval = 3600
    emails, _, _ = declare(tq)
    emails.inc(provider="before")  # written to the app's own broker when the test begins
    with isolated(tq) as app:
        emails.inc(provider="during")
        app.metrics.flush()
        assert values(app, "emails_sent") == {("during",): 1}
        emails.inc(provider="late")  # still buffered when the test ends: its broker's
    assert values(tq, "emails_sent") == {("before",): 1}
    left = tq.metrics._take()  # the declarations, to write again to the app's broker
    assert left is not None
    assert (left.amounts, left.counts, left.gauges) == ({}, {}, {})
