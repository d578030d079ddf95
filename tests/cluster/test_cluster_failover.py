"""A Redis Cluster failover under load: two worker processes and a producer run through a
``redis+cluster://`` URL while the master holding the producer's queue is SIGKILLed; its
replica is promoted by the Cluster itself, and the producer and the workers continue by
themselves (redis-py's Cluster client reads the slot map again and follows the slot).

With ``broker.min_replicas_acked = 1`` no acknowledged enqueue is lost. Without it, what is
lost is bounded as docs/scaling.md says: only enqueues acknowledged within the replication
lag before the master died. Each run writes its figures to ``failover-<mode>.json`` in the
test's directory and prints them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cluster.servers import NODE_TIMEOUT_MS, ClusterGroup
from tests.failover import failover_under_load, scheduler_and_routes_follow

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("acked", [1, 0], ids=["min_replicas_acked=1", "unacked"])
def test_a_master_killed_under_load_fails_over_and_loses_nothing_acknowledged(
    tmp_path: Path, acked: int
) -> None:
    # two replicas a master: after the failover the new master still has one to
    # acknowledge enqueues (the other replica follows it by itself)
    group = ClusterGroup(tmp_path / "cluster", replicas=2)
    group.start()
    queue_key = "cfo:{default}:ready"
    old = group.master_of(queue_key)
    try:
        # without the option, an enqueue sent during the election is retried through it by
        # redis-py's Cluster client (bounded: brokers/cluster.py), so few or none raise
        failover_under_load(
            tmp_path,
            group.url,
            "cfo",
            acked,
            kill=old.kill,
            promoted=lambda: group.master_of(queue_key).port != old.port,
            cluster_node_timeout_ms=NODE_TIMEOUT_MS,
        )
    finally:
        group.stop()


@pytest.mark.timeout(120)
def test_the_scheduler_and_the_web_routes_follow_a_failover(tmp_path: Path) -> None:
    group = ClusterGroup(tmp_path / "cluster")
    group.start()
    queue_key = "cfs:{default}:ready"
    old = group.master_of(queue_key)
    try:
        figures = scheduler_and_routes_follow(
            group.url,
            "cfs",
            kill=old.kill,
            promoted=lambda: group.master_of(queue_key).port != old.port,
        )
        assert figures["health_200_after_s"] < 15
    finally:
        group.stop()
