"""A Redis Cluster of the test's own, on free loopback ports: 3 masters with one replica
each (``redis-server --cluster-enabled yes`` x 6, joined by ``redis-cli --cluster create``),
a node declared failed after 1 s (``cluster-node-timeout``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.inthread import wait_for as wait_until
from tests.replication.servers import Node, free_port

NODE_TIMEOUT_MS = 1000


def _bus_free(port: int) -> bool:
    if port + 10000 >= 65536:
        return False
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port + 10000))
        except OSError:
            return False
    return True


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if _bus_free(port):
            return port


class ClusterGroup:
    """``masters`` masters, each with ``replicas`` replicas, started and joined."""

    def __init__(self, root: Path, masters: int = 3, replicas: int = 1) -> None:
        self.masters, self.replicas = masters, replicas
        self.nodes: list[Node] = []
        for n in range(masters * (1 + replicas)):
            node = Node(
                root,
                f"node{n}",
                ["--save", "", "--appendonly", "no"],
                "cluster-enabled yes\n"
                f"cluster-config-file {root / f'node{n}'}/nodes.conf\n"
                f"cluster-node-timeout {NODE_TIMEOUT_MS}\n"
                # a replica takes over however long its link was down (tests kill masters)
                "cluster-replica-validity-factor 0\n",
                repick=cluster_port,  # addresses are read after start()
            )
            self.nodes.append(node)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[: self.masters])
        return f"redis+cluster://{hosts}"

    def start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            pytest.fail("redis-cli is not installed")
        try:
            for node in self.nodes:
                node.start()
            addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
            subprocess.run(
                [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas),
                 "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )  # fmt: skip
            wait_until(self.healthy, 30, "the cluster to be ok on every node")
        except BaseException:
            self.stop()  # no server outlives a cluster that did not start
            raise

    def healthy(self) -> bool:
        for node in self.live():
            with node.client() as c:
                info: dict[str, Any] = c.cluster("info")
            if info.get("cluster_state") != "ok":
                return False
        return True

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def client(self) -> redis.RedisCluster:
        first = self.live()[0]
        return redis.RedisCluster(host="127.0.0.1", port=first.port, socket_timeout=5)

    def master_of(self, key: str) -> Node:
        """The node that holds ``key``'s slot now."""
        with self.client() as c:
            node = c.get_node_from_key(key)
            port = int(node.port)
        (found,) = [n for n in self.nodes if n.port == port]
        return found

    def master_ports(self) -> list[int]:
        with self.client() as c:
            return sorted(int(n.port) for n in c.get_primaries())

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def node_name(client: redis.RedisCluster, key: str) -> str:
    """The name (host:port) of the master that holds ``key``'s slot, by ``client``'s map."""
    node: Any = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
    return str(node.name)
