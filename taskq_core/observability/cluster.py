"""One read of the whole cluster's figures: every queue's gauges and stats, and every live
worker's heartbeat. The façade, the health check, the alert rules and the Prometheus
collector all start from a :class:`Cluster`, so one HTTP request costs a fixed number of
round trips whatever the number of workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .heartbeat import decode_records
from .metrics import QUEUE_COUNTERS, TASK_COUNTERS, QueueStats, parse_stats, public_counters

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..brokers.base import Broker, QueueInfo


@dataclass(slots=True)
class Cluster:
    """What the broker holds at ``at_ms`` (the reading process's clock)."""

    at_ms: int
    queues: list[QueueInfo]
    stats: dict[str, QueueStats]
    workers: list[dict[str, Any]]

    def oldest_age(self, info: QueueInfo) -> float | None:
        """Seconds the oldest ready task of a queue has waited."""
        if info.oldest_enqueued_ms is None or info.ready == 0:
            return None
        return max(0.0, (self.at_ms - info.oldest_enqueued_ms) / 1000)

    def workers_per_queue(self) -> dict[str, int]:
        """Live workers serving each queue (every known queue listed, even with none)."""
        out = {info.name: 0 for info in self.queues}
        for w in self.workers:
            for q in w.get("queues") or []:
                if isinstance(q, str):
                    out[q] = out.get(q, 0) + 1
        return out

    def totals(self) -> dict[str, int]:
        """Every public counter summed over the queues (``/metrics`` totals)."""
        names = {**TASK_COUNTERS, **QUEUE_COUNTERS}
        total = dict.fromkeys(names.values(), 0)
        for s in self.stats.values():
            for k, v in public_counters(s.counters, names).items():
                total[k] += v
        return total

    def task_names(self) -> list[str]:
        names: set[str] = set()
        for s in self.stats.values():
            names.update(s.tasks)
        return sorted(names)


def collect(app: TaskQueue, broker: Broker | None = None) -> Cluster:
    """Read the cluster through ``broker`` (the application's by default)."""
    b = broker or app.broker
    # the queue list through ``b`` too: a health probe must not wait on the main client
    infos = b.queue_info(list(dict.fromkeys([*app.settings.queues, *b.known_queues()])))
    return Cluster(
        at_ms=int(app.clock.time() * 1000),
        queues=infos,
        stats={info.name: parse_stats(info.stats) for info in infos},
        workers=decode_records(b.heartbeats()),
    )
