"""The Redis broker's observability records: heartbeats, server facts, the data marker,
locks, alert state, SLA snapshots and the autoscaler records, each one plan of
``redis_plans.py`` run by the broker (mixed into :class:`~taskq_core.brokers.redis.RedisBroker`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from redis.exceptions import ResponseError

if TYPE_CHECKING:
    from .redis_plans import Plan, Plans

T = TypeVar("T")


class RedisRecords:
    """The records' methods; ``plans``, ``run`` and ``run_async`` are RedisBroker's."""

    plans: Plans

    if TYPE_CHECKING:

        def run(self, plan: Plan[T]) -> T: ...
        async def run_async(self, plan: Plan[T]) -> T: ...

    def put_heartbeat(self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int) -> None:
        self.run(self.plans.put_heartbeat(worker_id, record, ttl_ms, now_ms))

    async def put_heartbeat_async(
        self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int
    ) -> None:
        await self.run_async(self.plans.put_heartbeat(worker_id, record, ttl_ms, now_ms))

    def drop_heartbeat(self, worker_id: str) -> None:
        self.run(self.plans.drop_heartbeat(worker_id))

    def heartbeats(self) -> list[bytes]:
        ids = self.run(self.plans.heartbeat_ids())
        if not ids:
            return []
        records = self.run(self.plans.heartbeat_records(ids))
        # a record whose TTL ran out belongs to a dead worker: Redis's own clock decides, so
        # clock skew between hosts cannot hide or drop a live worker
        gone = [i for i, r in zip(ids, records, strict=True) if r is None]
        if gone:
            self.run(self.plans.prune_heartbeats(gone))
        return [r for r in records if r is not None]

    def server_info(self) -> dict[str, Any]:
        return self.run(self.plans.server_info())

    def server_config(self, names: Sequence[str]) -> dict[str, str]:
        try:
            return self.run(self.plans.server_config(names))
        except ResponseError:  # CONFIG renamed, disabled or not allowed to this user
            return {}

    def data_marker(self) -> tuple[bytes | None, str]:
        return self.run(self.plans.data_marker())

    def put_data_marker(self, value: bytes) -> None:
        self.run(self.plans.put_data_marker(value))

    def try_lock(self, name: str, ttl_ms: int) -> bool:
        return self.run(self.plans.try_lock(name, ttl_ms))

    def alerts_read(self, history: int) -> tuple[dict[str, bytes], list[bytes]]:
        return self.run(self.plans.alerts_read(history))

    def alerts_write(
        self, put: dict[str, bytes], drop: Sequence[str], events: Sequence[bytes], keep: int
    ) -> None:
        self.run(self.plans.alerts_write(put, drop, events, keep))

    def snapshot_add(
        self, at_ms: int, data: bytes, keep_from_ms: int, series: str = "snapshots"
    ) -> None:
        self.run(self.plans.snapshot_add(at_ms, data, keep_from_ms, series))

    def snapshots(self, from_ms: int, series: str = "snapshots") -> list[tuple[int, bytes]]:
        return self.run(self.plans.snapshots(from_ms, series))

    def put_autoscaler(self, supervisor_id: str, record: bytes) -> None:
        self.run(self.plans.put_autoscaler(supervisor_id, record))

    def drop_autoscaler(self, supervisor_ids: Sequence[str]) -> None:
        if supervisor_ids:
            self.run(self.plans.drop_autoscaler(supervisor_ids))

    def autoscaler_records(self) -> dict[str, bytes]:
        return self.run(self.plans.autoscaler_records())
