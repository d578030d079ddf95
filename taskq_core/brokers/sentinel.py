"""Redis Sentinel: the clients of a ``redis+sentinel://`` broker URL follow a failover.

``redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`` names the
Sentinels (at least one; list them all) and the master's service name (``sentinel monitor
<service> ...``). The password, if any, is the data nodes' (the master's and replicas');
Sentinels themselves are asked without one unless the query sets ``sentinel_password``.
``rediss+sentinel://`` talks TLS to the data nodes.

Each connection asks the Sentinels for the current master when it connects, so after a
failover the next connection (every pooled one is dropped on its first error) reaches the
new master; a connection that finds its server demoted to a replica (``READONLY``) is
dropped the same way. redis-py does this (``SentinelConnectionPool``,
``SentinelManagedConnection``); taskq's own part is the URL and bounding how long a call may
wait (the broker's socket timeout and one retry, as for a single Redis).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from ..errors import InvalidOption
from .addresses import host_ports, node_options

SCHEMES = ("redis+sentinel://", "rediss+sentinel://")


def is_sentinel_url(url: str) -> bool:
    return url.startswith(SCHEMES)


@dataclass(frozen=True, slots=True)
class SentinelSpec:
    """What a ``redis+sentinel://`` URL says."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    tls: bool = False

    def node_options(self) -> dict[str, Any]:
        """redis-py connection options for the data nodes (besides the broker's own)."""
        return {"db": self.db, **node_options(self.username, self.password, self.tls)}

    def sentinel_options(self, timeout: float | None) -> dict[str, Any]:
        """redis-py options for the connections to the Sentinels themselves."""
        out: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
        if self.sentinel_password:
            out["password"] = self.sentinel_password
        return out


def parse(url: str) -> SentinelSpec:
    """The :class:`SentinelSpec` of ``url``; a clear error naming what is wrong otherwise."""
    if not is_sentinel_url(url):
        raise InvalidOption("a Sentinel broker URL starts with redis+sentinel://")
    parts = urlsplit(url)
    sentinels = host_ports(parts, "Sentinel address")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise InvalidOption(
            "broker_url: a Sentinel URL names the master's service after the addresses "
            "(redis+sentinel://host:26379,host:26380/mymaster[/db])"
        )
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise InvalidOption(f"broker_url: database {path[1][:20]!r} must be a number")
        db = int(path[1])
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - {"sentinel_password"})
    if unknown:
        raise InvalidOption(
            f"broker_url: unknown Sentinel URL parameter(s) {', '.join(unknown)} "
            "(known: sentinel_password)"
        )
    return SentinelSpec(
        sentinels=sentinels,
        service=unquote(path[0]),
        db=db,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sentinel_password=query.get("sentinel_password"),
        tls=url.startswith("rediss+"),
    )


class _Master(redis.Redis):
    """A blocking client of the master that closes its Sentinel connections with its own."""

    manager: Sentinel | None = None

    def close(self) -> None:
        super().close()
        if self.manager is not None:
            for s in self.manager.sentinels:
                s.close()


class _AsyncMaster(aioredis.Redis):
    """An asyncio client of the master that closes its Sentinel connections with its own
    (they belong to the loop, as its own do)."""

    manager: AsyncSentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.manager is not None:
            for s in self.manager.sentinels:
                await s.aclose()


def client(url: str, **options: Any) -> redis.Redis:
    """A blocking client of the current master of ``url``'s service."""
    found: redis.Redis = _master(url, Sentinel, _Master, options)
    return found


def async_client(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client of the current master of ``url``'s service."""
    found: aioredis.Redis = _master(url, AsyncSentinel, _AsyncMaster, options)
    return found


def _master(url: str, sentinel_class: Any, client_class: Any, options: dict[str, Any]) -> Any:
    """A client of ``client_class`` (which closes its Sentinels with itself) on the master
    that a ``sentinel_class`` manager finds."""
    spec = parse(url)
    manager = sentinel_class(
        list(spec.sentinels),
        sentinel_kwargs=spec.sentinel_options(options.get("socket_connect_timeout")),
    )
    found = manager.master_for(
        spec.service, redis_class=client_class, **spec.node_options(), **options
    )
    found.manager = manager
    return found
