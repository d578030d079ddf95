"""Every reading route against a Redis Cluster: the neutral route table (what all five
integrations serve), health, ``taskq status`` and the Prometheus exposition, over queues
whose slots are on different masters. Server readings come from every master."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
import redis

from taskq_core import TaskQueue
from taskq_core.cli.status_cmd import snapshot
from taskq_core.http.routes import RouteTable
from taskq_core.observability import alerts, health
from tests.cluster.servers import node_name
from tests.http.test_routes import TOKEN, Client, admin

pytestmark = pytest.mark.cluster


@pytest.fixture
def populated(make_app: Callable[..., TaskQueue]) -> TaskQueue:
    """Successes on three queues, a dead-lettered failure, waiting tasks, a heartbeat and
    an active alert (as tests/http/test_routes.py's, without the workflow)."""
    tq = make_app("redis", retry={"max_retries": 0}, monitoring={"max_backlog": 1})
    ok = tq.task(name="r.ok")(lambda x: x)

    @tq.task(name="r.fail")
    def fail() -> None:
        raise ValueError("nope")

    for i, queue in enumerate(["high", "default", "low"]):
        ok.options(queue=queue).enqueue(i)
    tq.enqueue("r.fail")
    tq.worker(burst=True, handle_signals=False).run()
    tq.enqueue("r.ok", [9], task_id="waiting-1")
    tq.enqueue("r.ok", [10], task_id="waiting-2")
    worker = tq.worker()
    from taskq_core.observability.heartbeat import HeartbeatMiddleware

    record = HeartbeatMiddleware(tq.settings.monitoring).record(worker)
    tq.broker.put_heartbeat(worker.id, orjson.dumps(record), 60_000, 0)
    alerts.evaluate(tq, force=True)
    return tq


def test_the_queues_are_on_more_than_one_master(
    populated: TaskQueue, cluster_client: redis.RedisCluster
) -> None:
    prefix = populated.broker.keys.prefix  # type: ignore[attr-defined]
    nodes = {
        node_name(cluster_client, f"{prefix}:{{{q}}}:ready") for q in ("high", "default", "low")
    }
    assert len(nodes) >= 2, nodes


def test_every_reading_route_answers_on_a_cluster(populated: TaskQueue) -> None:
    client = Client(RouteTable(populated, auth=admin), {"authorization": TOKEN})
    for route in client.table.routes:
        if "{" in route.path or route.admin:
            continue
        response = client("GET", route.path)
        assert response.status in (200, 503), (route.path, response.body[:300])
        if route.path == "/health":
            assert response.status == 200, response.body  # degraded (backlog), not down
    assert client.json("GET", "/metrics/summary")["succeeded"] == 3
    assert client.json("GET", "/alerts")["active"][0]["rule"] == "backlog"
    assert client.json("GET", "/metrics/workers")["alive"] == 1
    failed = client.json("GET", "/failed", {"queue": ["default"], "limit": ["10"]})
    assert failed["total"] == 1
    dead_id = failed["items"][0]["id"]
    assert client.json("GET", f"/jobs/{dead_id}")["status"] == "failed"
    assert client.json("GET", "/jobs/waiting-1", {"queue": ["default"]})["status"] == "queued"
    queues = {q["name"]: q for q in client.json("GET", "/metrics/queues")["queues"]}
    assert queues["default"]["depth"] == 2
    exposition = client("GET", "/metrics/prometheus").body.decode()
    assert "taskq_" in exposition
    # admin routes reach the task's master
    auth = {"authorization": TOKEN}
    cancelled = client.json("POST", "/jobs/waiting-1/cancel", headers=auth, body={})
    assert cancelled["cancelled"] is True
    retried = client.json("POST", "/failed/default/retry", body={"id": [dead_id]})
    assert retried["retried"] == 1


def test_health_status_and_server_readings_cover_every_master(populated: TaskQueue) -> None:
    report = health.check(populated)
    broker = report["components"]["broker"]
    # reachable; degraded only by what is true of these test masters: no persistence
    # (read from every master, the weakest setting reported)
    assert broker["status"] == "degraded", broker
    assert broker["warnings"] == [
        "Redis persistence is off (appendonly no, no save points): a restart loses every "
        "queued task and every acknowledged enqueue"
    ]
    info = populated.broker.server_info()
    assert info["cluster_masters"] == 3
    assert int(info["used_memory"]) > 0
    snap = snapshot(populated)
    by_name = {q["name"]: q for q in snap["queues"]}
    assert by_name["default"]["ready"] == 2
    assert {"high", "default", "low"} <= set(by_name)
    assert len(snap["workers"]) == 1
