"""The Sentinel group the replication tests share (started once per session, on free
loopback ports; stopped at the end). Tests that kill a node start a group of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.replication.servers import SentinelGroup


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = SentinelGroup(Path(tmp_path_factory.mktemp("sentinel")))
    group.start()
    yield group
    group.stop()


@pytest.fixture
def fresh_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A group of this test's own, for tests that kill its master."""
    group = SentinelGroup(tmp_path / "group")
    group.start()
    yield group
    group.stop()


@pytest.fixture
def master_client(sentinel_group: SentinelGroup) -> Iterator[redis.Redis]:
    client = sentinel_group.node(sentinel_group.master_port()).client()
    yield client
    client.close()
