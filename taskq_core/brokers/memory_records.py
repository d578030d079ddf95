"""The in-memory broker's observability records: heartbeats, the data marker, locks, alert
state, SLA snapshots and the autoscaler records (the plans of the same names in
``redis_plans.py``). Heartbeats and locks expire on real time, as Redis TTLs do."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from .base import SNAPSHOT_SERIES


def mono_ms() -> int:
    """Milliseconds of the monotonic clock: what TTLs here run on."""
    return int(time.monotonic() * 1000)


class MemoryRecords:
    """Mixed into :class:`~taskq_core.brokers.memory.MemoryBroker`, under its lock."""

    _lock: threading.Lock

    def _init_records(self) -> None:
        self._heartbeats: dict[str, tuple[bytes, int]] = {}  # id -> (record, expiry)
        self._marker: bytes | None = None  # see observability/durability.py
        self._locks: dict[str, int] = {}  # name -> expiry
        self._alerts: dict[str, bytes] = {}
        self._alert_history: deque[bytes] = deque()
        self._snapshots: dict[str, list[tuple[int, bytes]]] = {s: [] for s in SNAPSHOT_SERIES}
        self._autoscaler: dict[str, bytes] = {}

    def put_heartbeat(self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int) -> None:
        with self._lock:
            self._heartbeats[worker_id] = (record, mono_ms() + ttl_ms)

    async def put_heartbeat_async(
        self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int
    ) -> None:
        self.put_heartbeat(worker_id, record, ttl_ms, now_ms)

    def drop_heartbeat(self, worker_id: str) -> None:
        with self._lock:
            self._heartbeats.pop(worker_id, None)

    def heartbeats(self) -> list[bytes]:
        now = mono_ms()
        with self._lock:
            for worker_id in [i for i, (_, exp) in self._heartbeats.items() if exp <= now]:
                del self._heartbeats[worker_id]
            return [record for record, _ in self._heartbeats.values()]

    def server_info(self) -> dict[str, Any]:
        return {}

    def server_config(self, names: Sequence[str]) -> dict[str, str]:
        return {}

    def data_marker(self) -> tuple[bytes | None, str]:
        # the data lives as long as this object: one "server run" per broker
        with self._lock:
            return self._marker, f"memory-{id(self):x}"

    def put_data_marker(self, value: bytes) -> None:
        with self._lock:
            self._marker = value

    def try_lock(self, name: str, ttl_ms: int) -> bool:
        now = mono_ms()
        with self._lock:
            if self._locks.get(name, 0) > now:
                return False
            self._locks[name] = now + ttl_ms
            return True

    def alerts_read(self, history: int) -> tuple[dict[str, bytes], list[bytes]]:
        with self._lock:
            return dict(self._alerts), list(self._alert_history)[:history]

    def alerts_write(
        self, put: dict[str, bytes], drop: Sequence[str], events: Sequence[bytes], keep: int
    ) -> None:
        with self._lock:
            self._alerts.update(put)
            for key in drop:
                self._alerts.pop(key, None)
            self._alert_history.extendleft(events)  # LPUSH: the last event ends up first
            while len(self._alert_history) > keep:
                self._alert_history.pop()

    def snapshot_add(
        self, at_ms: int, data: bytes, keep_from_ms: int, series: str = "snapshots"
    ) -> None:
        with self._lock:
            kept = self._snapshots[series]
            both = [*[(at, d) for at, d in kept if d != data], (at_ms, data)]
            self._snapshots[series] = sorted(
                (x for x in both if x[0] >= keep_from_ms), key=lambda x: x[0]
            )

    def snapshots(self, from_ms: int, series: str = "snapshots") -> list[tuple[int, bytes]]:
        with self._lock:
            return [(at, d) for at, d in self._snapshots[series] if at >= from_ms]

    def put_autoscaler(self, supervisor_id: str, record: bytes) -> None:
        with self._lock:
            self._autoscaler[supervisor_id] = record

    def drop_autoscaler(self, supervisor_ids: Sequence[str]) -> None:
        with self._lock:
            for sid in supervisor_ids:
                self._autoscaler.pop(sid, None)

    def autoscaler_records(self) -> dict[str, bytes]:
        with self._lock:
            return dict(self._autoscaler)
