"""A Redis Sentinel group of the test's own, on free loopback ports: a master, a replica and
three ``redis-server --sentinel`` processes (quorum 2, a master is down after 1 s)."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.inthread import wait_for as wait_until
from tests.reliability.proxy import Proxy

SERVICE = "taskq-test"
DOWN_AFTER_MS = 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with redis.Redis(
            port=port,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            retry=Retry(NoBackoff(), 0),  # asked again by the caller's loop
        ) as c:
            return bool(c.ping())
    except redis.RedisError:
        return False


class Node:
    """One redis-server (data node or Sentinel) with its own directory."""

    def __init__(
        self,
        root: Path,
        name: str,
        args: list[str],
        config: str = "",
        port: int | None = None,
        *,
        repick: Callable[[], int] | None = None,
    ) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed")
        #: picks another port when this one was taken before the server bound it (a port
        #: found free is free only until someone else's connection takes it); None: the
        #: port is fixed (others were told it)
        self.repick = repick
        self.port = port or (repick or free_port)()
        self.dir = root / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "redis.conf"
        self.config = config
        self.argv = [server, str(self.conf), *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for _ in range(5):
            self.conf.write_text(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n{self.config}")
            with (self.dir / "log").open("ab") as log:  # the child keeps its own descriptor
                self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
            proc = self.proc
            wait_until(
                lambda: proc.poll() is not None or _answers(self.port),
                10,
                f"redis on port {self.port}",
            )
            if proc.poll() is None:
                return
            if self.repick is None:
                break
            self.port = self.repick()  # it could not bind: another port
        tail = (self.dir / "log").read_text(errors="replace")[-2000:]
        pytest.fail(f"redis on port {self.port} exited at start:\n{tail}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=2)


class SentinelGroup:
    """A master, ``replicas`` replicas and three Sentinels watching them as ``SERVICE``."""

    def __init__(self, root: Path, replicas: int = 1, *, proxied: bool = False) -> None:
        # no persistence: a killed node is not restarted in these tests
        data = ["--save", "", "--appendonly", "no"]
        self.master = Node(root, "master", data)
        #: with ``proxied``, the replicas reach the master through this proxy, whose
        #: blackhole() holds back replication (a lagging replica) while the rest goes on
        self.proxy = Proxy(self.master.port).start() if proxied else None
        link = self.proxy.port if self.proxy is not None else self.master.port
        self.replicas = [
            Node(
                root,
                f"replica{n}",
                [*data, "--replicaof", "127.0.0.1", str(link)],
                repick=free_port,
            )
            for n in range(replicas)
        ]
        self.sentinels = [
            Node(
                root,
                f"sentinel{i}",
                ["--sentinel"],
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.master.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n",
                repick=free_port,
            )
            for i in range(3)
        ]
        self.data = [self.master, *self.replicas]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def start(self) -> None:
        try:
            self.master.start()
            for r in self.replicas:
                r.start()
            wait_until(self._replicating, 15, "the replicas to sync")
            for s in self.sentinels:
                s.start()
            wait_until(self._watched, 15, "the Sentinels to see the replica and each other")
        except BaseException:
            self.stop()  # no server outlives a group that did not start
            raise

    def _replicating(self) -> bool:
        for r in self.replicas:
            with r.client() as c:
                if c.info("replication").get("master_link_status") != "up":
                    return False
        return True

    def _watched(self) -> bool:
        for s in self.sentinels:
            with s.client() as c:
                info: dict[str, Any] = c.sentinel_master(SERVICE)
            if int(info["num-slaves"]) < len(self.replicas) or int(info["num-other-sentinels"]) < 2:
                return False
        return True

    def master_port(self) -> int:
        with self.sentinels[0].client() as c:
            _, port = c.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def node(self, port: int) -> Node:
        (found,) = [n for n in self.data if n.port == port]
        return found

    def stop(self) -> None:
        for n in [*self.sentinels, *self.data]:
            n.kill()
        if self.proxy is not None:
            self.proxy.stop()
