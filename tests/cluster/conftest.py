"""The Redis Cluster the cluster tests share (3 masters with a replica each, started once
per session on free loopback ports; stopped at the end), and ``redis_url`` pointing at it.
The failover test starts a Cluster of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.cluster.servers import ClusterGroup


@pytest.fixture(scope="session")
def cluster_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterGroup]:
    group = ClusterGroup(Path(tmp_path_factory.mktemp("cluster")))
    group.start()
    yield group
    group.stop()


@pytest.fixture
def cluster_client(cluster_group: ClusterGroup) -> Iterator[redis.RedisCluster]:
    client = cluster_group.client()
    yield client
    client.close()


# every test here that asks for a Redis gets the shared Cluster: make_app, the contract
# suite's broker and the prefix fixture (which deletes the test's keys on every master)


@pytest.fixture
def redis_url(cluster_group: ClusterGroup) -> str:
    return cluster_group.url


@pytest.fixture
def redis_client(cluster_client: redis.RedisCluster) -> redis.RedisCluster:
    return cluster_client
