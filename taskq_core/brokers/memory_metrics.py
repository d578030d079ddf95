"""The in-memory broker's custom metrics (observability/custom.py): what
``redis_metrics.py`` keeps in Redis, in this process, under the broker's lock."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import MetricsWrite


class MemoryMetrics:
    """Mixed into :class:`~taskq_core.brokers.memory.MemoryBroker`."""

    _lock: threading.Lock

    def _init_metrics(self) -> None:
        self._metric_fields: dict[str, str | int | float] = {}
        self._metric_gauges: dict[str, tuple[int, float]] = {}

    def metrics_write(self, batch: MetricsWrite) -> None:
        with self._lock:
            fields = self._metric_fields
            fields.update(batch.put)
            for name, n in batch.counts.items():
                fields[name] = int(fields.get(name, 0)) + n
            for name, x in batch.amounts.items():
                fields[name] = float(fields.get(name, 0.0)) + x
            for series, (at_ms, value) in batch.gauges.items():
                # as ZADD GT and keeping the highest-scored member: the value set last stays
                held = self._metric_gauges.get(series)
                if held is None or at_ms >= held[0]:
                    self._metric_gauges[series] = (at_ms, value)

    async def metrics_write_async(self, batch: MetricsWrite) -> None:
        self.metrics_write(batch)

    def metrics_read(self) -> tuple[dict[str, str], dict[str, tuple[int, float]]]:
        with self._lock:
            fields = {
                k: v if isinstance(v, str) else repr(v) for k, v in self._metric_fields.items()
            }
            return fields, dict(self._metric_gauges)
