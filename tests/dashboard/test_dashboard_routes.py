"""The dashboard's routes through the core's route table (what every integration serves):
the page's headers and filled-in links, its assets' types and caching, what the session
route tells the page, the hour's history, and the server time of every read the page makes
with a million queued tasks and ten thousand dead-lettered ones."""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
import pytest

from taskq_core import TaskQueue
from taskq_core.clock import ManualClock
from taskq_core.dashboard import CSP
from taskq_core.http import Request, Response
from taskq_core.http.routes import RouteTable
from taskq_core.observability import history
from taskq_core.observability.cluster import collect

TOKEN = "Bearer dash"


def admin(request: Request) -> bool:
    return request.headers.get("authorization") == TOKEN


def get(table: RouteTable, path: str, headers: dict[str, str] | None = None,
        query: dict[str, list[str]] | None = None) -> Response:  # fmt: skip
    return table.dispatch(Request("GET", path, query or {}, headers or {}, b""))


def test_the_page_is_served_with_its_prefix_and_a_strict_policy(
    make_app: Callable[..., TaskQueue],
) -> None:
    table = RouteTable(make_app("memory"), prefix="/ops/<tasks>")
    page = get(table, "/dashboard")  # the adapter hands the path after its prefix
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP
    assert "unsafe-inline" not in CSP
    assert page.headers["x-frame-options"] == "DENY"
    text = page.body.decode()
    # the prefix is escaped where the page names it
    assert 'data-base="/ops/&lt;tasks&gt;"' in text
    assert "<tasks>" not in text
    assert 'src="/ops/&lt;tasks&gt;/dashboard/assets/dashboard.js?v=' in text


def test_assets_have_their_types_an_etag_and_a_long_cache(
    make_app: Callable[..., TaskQueue],
) -> None:
    table = RouteTable(make_app("memory"))
    js = get(table, "/dashboard/assets/dashboard.js")
    css = get(table, "/dashboard/assets/dashboard.css", query={"v": ["0123abcd"]})
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert js.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert js.headers["x-content-type-options"] == "nosniff"
    assert b"textContent" in js.body
    again = get(table, "/dashboard/assets/dashboard.js", {"if-none-match": js.headers["etag"]})
    assert (again.status, again.body) == (304, b"")
    assert get(table, "/dashboard/assets/app.py").status == 400
    assert get(table, "/dashboard/assets/secret.js").status == 404
    assert get(table, "/dashboard/assets/dashboard.js", query={"v": ["<x>"]}).status == 400


def test_the_session_says_what_this_request_may_do(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")
    guarded = RouteTable(tq, auth=admin)
    anonymous = orjson.loads(get(guarded, "/dashboard/session").body)
    assert anonymous["admin"] is False
    assert anonymous["read"] == {"health": True, "metrics": True, "results": False,
                                 "errors": False, "hosts": False, "config": False}  # fmt: skip
    signed = orjson.loads(get(guarded, "/dashboard/session", {"authorization": TOKEN}).body)
    assert signed["admin"] is True
    assert all(signed["read"].values())
    # no auth callable: nobody may act, whatever the request carries
    bare = RouteTable(tq)
    assert (
        orjson.loads(get(bare, "/dashboard/session", {"authorization": TOKEN}).body)["admin"]
        is False
    )


def test_the_history_has_a_point_a_minute_for_an_hour(make_app: Callable[..., TaskQueue]) -> None:
    clock = ManualClock(1_800_000_000.0)
    tq = make_app("memory", clock=clock, retry={"max_retries": 0})
    ok = tq.task(name="h.ok")(lambda: None)

    @tq.task(name="h.fail")
    def fail() -> None:
        raise ValueError("no")

    def tick() -> bool:
        return history.record(tq, collect(tq))

    assert tick() is True
    assert tick() is False  # a point a minute at most
    for minute in range(1, 70):
        clock.advance(60)
        for _ in range(minute % 3):
            ok.enqueue()
        fail.enqueue()
        tq.worker(burst=True, handle_signals=False).run()
        assert tick() is True
    series = history.series(tq, int(clock.time() * 1000))
    points = series["points"]
    # the last hour only, each the change over its minute
    assert len(points) == 60
    assert [p["succeeded"] for p in points] == [m % 3 for m in range(10, 70)]
    assert {p["failed"] for p in points} == {1}
    assert {p["seconds"] for p in points} == {60.0}
    body = orjson.loads(get(RouteTable(tq), "/dashboard/history").body)
    assert body == series


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_every_read_of_the_page_is_fast_with_a_million_queued_tasks(
    make_app: Callable[..., TaskQueue],
) -> None:
    """1,000,000 ready tasks and 10,000 dead-lettered ones: each request the page makes is
    served within 100 ms of server time (the route table's dispatch, broker reads included)."""
    tq = make_app("redis", retry={"max_retries": 0})
    job = tq.task(name="big.job")(lambda: None)

    @tq.task(name="big.fail", queue="low")
    def fail() -> None:
        raise ValueError("no")

    batch = [fail.call() for _ in range(10_000)]
    tq.enqueue_many(batch)
    tq.worker(queues=["low"], burst=True, handle_signals=False, concurrency=64).run()
    for _ in range(100):
        tq.enqueue_many([job.call() for _ in range(10_000)])
    table = RouteTable(tq, auth=admin)
    auth = {"authorization": TOKEN}
    assert orjson.loads(get(table, "/metrics/summary").body)["depth"] == 1_000_000
    dead = orjson.loads(get(table, "/failed", auth, {"limit": ["1"]}).body)["total"]
    assert dead == 10_000
    reads = [
        ("/dashboard", {}), ("/dashboard/session", {}), ("/dashboard/history", {}),
        ("/metrics/summary", {}), ("/health", {}), ("/metrics/queues", {}),
        ("/metrics/workers", {}), ("/metrics/memory", {}), ("/alerts", {"limit": ["20"]}),
        ("/sla", {}), ("/metrics/autoscaler", {}), ("/metrics", {}),
        ("/failed", {"limit": ["20"], "offset": [str(dead - 20)]}),
        ("/failed", {"limit": ["20"], "offset": ["0"]}),
    ]  # fmt: skip
    slowest: dict[str, float] = {}
    for path, query in reads:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            response = get(table, path, auth, query)
            times.append(time.perf_counter() - started)
            assert response.status in (200, 503), (path, response.body[:200])
        slowest[path + str(query)] = max(times)
    print({k: round(v * 1000, 1) for k, v in slowest.items()})
    assert all(v < 0.1 for v in slowest.values()), slowest
