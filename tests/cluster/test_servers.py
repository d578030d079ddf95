"""The test clusters' own start-up: a node whose port (or cluster bus port) someone else took
between picking it and binding it starts on another port instead of failing the test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cluster.servers import _bus_free, cluster_port
from tests.replication.servers import Node

pytestmark = pytest.mark.cluster


def test_a_node_whose_bus_port_is_taken_starts_on_another_port(tmp_path: Path) -> None:
    port = cluster_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port + 10000))  # the cluster bus port, taken meanwhile
        taken.listen()
        assert not _bus_free(port)
        node = Node(
            tmp_path,
            "node",
            ["--save", "", "--appendonly", "no"],
            "cluster-enabled yes\n",
            port=port,
            repick=cluster_port,
        )
        try:
            node.start()
            assert node.port != port
            with node.client() as c:
                assert c.ping()
        finally:
            node.kill()


def test_a_fixed_port_that_is_taken_fails_with_the_servers_own_words(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        node = Node(tmp_path, "node", ["--save", "", "--appendonly", "no"],
                    port=taken.getsockname()[1])  # fmt: skip
        with pytest.raises(pytest.fail.Exception, match="exited at start"):
            node.start()
        node.kill()
