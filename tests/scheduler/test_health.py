"""The ``scheduler`` component of /health in its three states, and the schema it follows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import jsonschema
import orjson

from taskq_core import TaskQueue
from taskq_core.http import Request
from taskq_core.http.routes import RouteTable
from taskq_core.http.schemas import HEALTH
from taskq_core.observability import health
from taskq_core.scheduler import Scheduler


def component(tq: TaskQueue) -> dict[str, object]:
    report = health.check(tq)
    jsonschema.validate(report, HEALTH)
    scheduler: dict[str, object] = report["components"]["scheduler"]
    return scheduler


def test_not_configured_then_degraded_then_healthy(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("redis")
    tq.task(name="report")(lambda: "done")
    assert component(tq)["status"] == "not_configured"

    tq.schedule("report", every=3600, name="hourly")
    degraded = component(tq)
    assert degraded["status"] == "degraded"
    assert degraded["schedules"] == {"hourly": None}
    assert "no scheduler running" in str(degraded["detail"])
    # degraded, never 503 on its own
    response = RouteTable(tq).dispatch(Request("GET", "/health"))
    assert response.status == 200
    assert orjson.loads(response.body)["components"]["scheduler"]["status"] == "degraded"

    s = Scheduler(tq, heartbeat_interval=2.0)
    seen: list[dict[str, object]] = []

    async def main() -> None:
        run = asyncio.create_task(s.async_run())
        for _ in range(100):
            await asyncio.sleep(0.02)
            # health reads with the blocking client: run it off the loop
            got = await asyncio.to_thread(component, tq)
            if got["status"] == "healthy":
                seen.append(got)
                break
        s.stop()
        await run
        await tq.broker.aclose()

    asyncio.run(main())
    assert seen, "the scheduler never showed up as healthy"
    healthy = seen[0]
    assert healthy["alive"] == 1
    runs = healthy["schedules"]
    assert isinstance(runs, dict)
    assert list(runs) == ["hourly"]
    assert runs["hourly"] % 3_600_000 == 0
    assert runs["hourly"] > time.time() * 1000
    # stopped: back to degraded (the app still has its schedule)
    assert component(tq)["status"] == "degraded"


def test_a_live_scheduler_of_another_process_counts(make_app: Callable[..., TaskQueue]) -> None:
    # a web process without schedules of its own still sees the cluster's scheduler
    scheduling = make_app("redis")
    scheduling.task(name="report")(lambda: "done")
    scheduling.schedule("report", cron="0 9 * * *", timezone="Europe/Paris", name="daily")
    s = Scheduler(scheduling)
    s.tick(scheduling.clock.time())
    from taskq_core import scheduler_store

    scheduler_store.put(scheduling.broker, s.id, s.record(), 5000)
    web = make_app("redis")
    got = component(web)
    assert got["status"] == "healthy"
    assert list(got["schedules"]) == ["daily"]  # type: ignore[call-overload]
    scheduler_store.drop(scheduling.broker, s.id)
    assert component(web)["status"] == "not_configured"


def test_memory_broker_heartbeats_work_too(make_app: Callable[..., TaskQueue]) -> None:
    tq = make_app("memory")
    tq.task(name="report")(lambda: "done")
    tq.schedule("report", every=60)
    s = Scheduler(tq)
    from taskq_core import scheduler_store

    scheduler_store.put(tq.broker, s.id, s.record(), 60_000)
    assert component(tq)["status"] == "healthy"
    scheduler_store.put(tq.broker, s.id, s.record(), 1)  # expires at once
    time.sleep(0.01)
    assert component(tq)["status"] == "degraded"
