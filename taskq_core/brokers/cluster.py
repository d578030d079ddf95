"""Redis Cluster: a ``redis+cluster://`` broker URL, and the broker whose calls span nodes.

``redis+cluster://[[user]:password@]host:port[,host:port...]`` names some of the Cluster's
nodes (one is enough; list several, in case one is down at start). ``rediss+cluster://``
talks TLS. A Cluster has one database: a ``/db`` path other than ``/0`` is refused.

Every queue's keys carry its name as a hash tag (``keys.py``), so each script call touches
one slot, and redis-py's Cluster client sends it to the node that holds that slot, following
``MOVED``/``ASK`` and refreshing its slot map after a node is lost, a bounded number of times.
What a single Redis does in one script across a worker's queues is done here queue by queue:

* **fetch**: the queues are asked in priority order, each for what the ones before it did
  not give, so a lower queue is leased from only while every higher one was empty when it
  was asked (strict priority; within one call, not atomic across queues: a task enqueued
  to a higher queue during the call is leased by the next one);
* **the idle wait**: one ``BLPOP`` per slot (a queue's wake list, with the waiter's own
  nudge list there), all at once; the first to return ends the others by a push on their
  nudge lists, not by cancelling them, so no wake token is taken and dropped, and a token
  one of them did take is handed back (see :meth:`ClusterBroker.wait_async`);
* **server readings** (INFO, CONFIG) are read from every master: the memory report names
  the fullest master, the durability report the weakest setting.

Not on a Cluster (refused with an error naming why): ``broker.min_replicas_acked`` (WAIT
counts the replicas of one connection's writes, and a plan's writes go to several nodes
over pooled connections) and workflows (a workflow's record and its steps' queues are in
different slots; see docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.backoff import ExponentialBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from ..errors import InvalidOption
from . import addresses
from .addresses import host_ports
from .base import FetchResult

SCHEMES = ("redis+cluster://", "rediss+cluster://")

#: how often redis-py's Cluster client tries a call again after a redirection or a lost
#: node (it refreshes its slot map in between): enough to ride out a failover whose
#: replica is promoted within a few seconds, bounded so that a call cannot hang
CLUSTER_ATTEMPTS = 6


def is_cluster_url(url: str) -> bool:
    return url.startswith(SCHEMES)


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What a ``redis+cluster://`` URL says."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False

    def node_options(self) -> dict[str, Any]:
        """redis-py connection options for the nodes (besides the broker's own)."""
        return addresses.node_options(self.username, self.password, self.tls)


def parse(url: str) -> ClusterSpec:
    """The :class:`ClusterSpec` of ``url``; a clear error naming what is wrong otherwise."""
    if not is_cluster_url(url):
        raise InvalidOption("a Cluster broker URL starts with redis+cluster://")
    parts = urlsplit(url)
    nodes = host_ports(parts, "Cluster node")
    path = [p for p in parts.path.split("/") if p]
    if path not in ([], ["0"]):
        raise InvalidOption(
            "broker_url: a Redis Cluster has one database (0); "
            f"remove {parts.path[:20]!r} from the URL"
        )
    if parts.query:
        raise InvalidOption("broker_url: a Cluster URL takes no parameters")
    return ClusterSpec(
        nodes=nodes,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=url.startswith("rediss+"),
    )


def client(url: str, **options: Any) -> RedisCluster:
    """A blocking Cluster client of ``url``'s nodes."""
    spec = parse(url)
    options.pop("retry", None)  # the Cluster client's own: redirections and lost nodes
    options.pop("health_check_interval", None)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in spec.nodes],  # type: ignore[no-untyped-call]
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), CLUSTER_ATTEMPTS),
        **spec.node_options(),
        **options,
    )


def async_client(url: str, **options: Any) -> AsyncRedisCluster:
    """An asyncio Cluster client of ``url``'s nodes (of the running loop)."""
    from redis.asyncio.retry import Retry as AsyncRetry

    spec = parse(url)
    options.pop("health_check_interval", None)
    return AsyncRedisCluster(
        startup_nodes=[AsyncClusterNode(host, port) for host, port in spec.nodes],
        retry=AsyncRetry(ExponentialBackoff(cap=1.0, base=0.05), CLUSTER_ATTEMPTS),
        **spec.node_options(),
        **options,
    )


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


# -- readings from several nodes, and fetches from several queues, made one


def merge_fetches(results: Sequence[FetchResult]) -> FetchResult:
    """One :class:`FetchResult` from per-queue ones (in queue order): the deliveries of
    each, the earliest next due time, the suspects waiting in any."""
    dues = [r.next_due_ms for r in results if r.next_due_ms is not None]
    return FetchResult(
        [d for r in results for d in r.deliveries],
        min(dues) if dues else None,
        max((r.now_ms for r in results), default=0),
        sum(r.suspects for r in results),
        any(r.suspect for r in results),
    )


_DURABLE_RANK = {"": 0, "no": 0, "everysec": 1, "yes": 2, "always": 2}


def weakest(configs: Sequence[dict[str, str]]) -> dict[str, str]:
    """Per setting, the least durable value any master has (``appendonly no`` on one
    master means the tasks on that master are lost on its restart)."""
    out: dict[str, str] = {}
    for config in configs:
        for name, value in config.items():
            known = out.get(name)
            if known is None or _DURABLE_RANK.get(value, 1) < _DURABLE_RANK.get(known, 1):
                out[name] = value
    return out


def fullest(infos: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The INFO of the master nearest its memory limit (or using the most, with no limit),
    with ``cluster_masters``: how many were read."""

    def pressure(info: dict[str, Any]) -> tuple[float, int]:
        used = int(info.get("used_memory", 0) or 0)
        limit = int(info.get("maxmemory", 0) or 0)
        return (used / limit if limit else 0.0, used)

    found: dict[str, Any] = {}
    if infos:
        top: dict[str, Any] = max(infos, key=pressure)
        found.update(top)
    found["cluster_masters"] = len(infos)
    return found
