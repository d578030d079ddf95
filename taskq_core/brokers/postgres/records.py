"""The PostgreSQL broker's observability records and custom metrics: heartbeats, the data
marker, locks, alert state, snapshots, the autoscaler records (what ``redis_records.py``
keeps in Redis), in the ``records`` and ``series`` tables. Expiry runs on the database's
clock, as Redis TTLs run on the server's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..base import SNAPSHOT_SERIES, MetricsWrite
from .calls import Call, _b, _none
from .maintenance import Maintenance

if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")


class PostgresRecords:
    """Mixed into :class:`~taskq_core.brokers.postgres.PostgresBroker`."""

    schema: str
    ns: str
    maintenance: Maintenance

    if TYPE_CHECKING:

        def run(self, call: Call[T]) -> T: ...
        async def run_async(self, call: Call[T]) -> T: ...

    def _put(self, space: str, key: str, value: bytes, ttl_ms: int | None) -> Call[None]:
        s = self.schema
        return Call(
            f"INSERT INTO {s}.records AS r (ns, space, key, value, expires_ms) "
            f"VALUES (%s, %s, %s, %s, CASE WHEN %s::bigint IS NULL THEN NULL "
            f"ELSE {s}.clock_ms() + %s::bigint END) "
            "ON CONFLICT (ns, space, key) DO UPDATE SET value = excluded.value, "
            "expires_ms = excluded.expires_ms",
            (self.ns, space, key, value, ttl_ms, ttl_ms),
            _none,
        )

    def _drop(self, space: str, keys: Sequence[str]) -> None:
        self.run(
            Call(
                f"DELETE FROM {self.schema}.records "
                "WHERE ns = %s AND space = %s AND key = ANY(%s::text[])",
                (self.ns, space, list(keys)),
                _none,
            )
        )

    def _all(self, space: str) -> dict[str, bytes]:
        return self.run(
            Call(
                f"SELECT key, value FROM {self.schema}.records "
                f"WHERE ns = %s AND space = %s "
                f"AND (expires_ms IS NULL OR expires_ms > {self.schema}.clock_ms())",
                (self.ns, space),
                lambda rows: {k: bytes(v) for k, v in rows},
                rows=True,
            )
        )

    # -- heartbeats

    def put_heartbeat(self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int) -> None:
        self.run(self._put("heartbeat", worker_id, record, ttl_ms))

    async def put_heartbeat_async(
        self, worker_id: str, record: bytes, ttl_ms: int, now_ms: int
    ) -> None:
        await self.run_async(self._put("heartbeat", worker_id, record, ttl_ms))
        # a worker's periodic write: its turn, now and then, to vacuum (maintenance.py)
        await self.maintenance.tick(self)  # type: ignore[arg-type]

    def drop_heartbeat(self, worker_id: str) -> None:
        self._drop("heartbeat", [worker_id])

    def heartbeats(self) -> list[bytes]:
        self.run(
            Call(
                f"DELETE FROM {self.schema}.records WHERE ns = %s AND space = 'heartbeat' "
                f"AND expires_ms <= {self.schema}.clock_ms()",
                (self.ns,),
                _none,
            )
        )
        return list(self._all("heartbeat").values())

    # -- server facts and the data marker

    def server_info(self) -> dict[str, Any]:
        return self.run(
            Call(
                "SELECT current_setting('server_version'), "
                "extract(epoch FROM now() - pg_postmaster_start_time())::bigint, "
                "(SELECT count(*) FROM pg_stat_activity), current_setting('max_connections'), "
                "current_setting('autovacuum')",
                (),
                lambda row: {
                    "postgres_version": row[0],
                    "uptime_in_seconds": int(row[1]),
                    "connected_clients": int(row[2]),
                    "max_connections": int(row[3]),
                    "autovacuum": row[4] == "on",
                },
            )
        )

    def server_config(self, names: Sequence[str]) -> dict[str, str]:
        # Redis's persistence settings mean nothing here: a committed task is on disk
        return {}

    def data_marker(self) -> tuple[bytes | None, str]:
        return self.run(
            Call(
                f"SELECT (SELECT value FROM {self.schema}.records "
                "WHERE ns = %s AND space = 'marker' AND key = ''), "
                "pg_postmaster_start_time()::text",
                (self.ns,),
                lambda row: (_b(row[0]), str(row[1])),
            )
        )

    def put_data_marker(self, value: bytes) -> None:
        self.run(self._put("marker", "", value, None))

    def try_lock(self, name: str, ttl_ms: int) -> bool:
        return self.run(self.lock_call(name, ttl_ms))

    def lock_call(self, name: str, ttl_ms: int) -> Call[bool]:
        s = self.schema
        return Call(
            f"INSERT INTO {s}.records AS r (ns, space, key, value, expires_ms) "
            f"VALUES (%s, 'lock', %s, '', {s}.clock_ms() + %s) "
            "ON CONFLICT (ns, space, key) DO UPDATE SET expires_ms = excluded.expires_ms "
            f"WHERE r.expires_ms <= {s}.clock_ms() RETURNING 1",
            (self.ns, name, ttl_ms),
            lambda row: row is not None,
        )

    # -- alerts

    def alerts_read(self, history: int) -> tuple[dict[str, bytes], list[bytes]]:
        events = self.run(
            Call(
                f"SELECT data FROM {self.schema}.series "
                "WHERE ns = %s AND series = 'alerts' ORDER BY at_ms DESC, n DESC LIMIT %s",
                (self.ns, history),
                lambda rows: [bytes(r[0]) for r in rows],
                rows=True,
            )
        )
        return self._all("alert"), events

    def alerts_write(
        self, put: dict[str, bytes], drop: Sequence[str], events: Sequence[bytes], keep: int
    ) -> None:
        for key, value in put.items():
            self.run(self._put("alert", key, value, None))
        if drop:
            self._drop("alert", drop)
        s = self.schema
        for event in events:
            self.run(
                Call(
                    f"INSERT INTO {s}.series (ns, series, at_ms, data) "
                    "VALUES (%s, 'alerts', 0, %s)",
                    (self.ns, event),
                    _none,
                )
            )
        self.run(
            Call(
                f"DELETE FROM {s}.series WHERE ns = %s AND series = 'alerts' AND n NOT IN "
                f"(SELECT n FROM {s}.series WHERE ns = %s AND series = 'alerts' "
                "ORDER BY at_ms DESC, n DESC LIMIT %s)",
                (self.ns, self.ns, keep),
                _none,
            )
        )

    # -- snapshots

    def snapshot_add(
        self, at_ms: int, data: bytes, keep_from_ms: int, series: str = "snapshots"
    ) -> None:
        if series not in SNAPSHOT_SERIES:
            raise ValueError(f"unknown snapshot series {series!r}")
        s = self.schema
        # one statement: the same data is stored once (as a sorted set's member is)
        self.run(
            Call(
                f"WITH gone AS (DELETE FROM {s}.series WHERE ns = %s AND series = %s "
                "AND (at_ms < %s OR data = %s)) "
                f"INSERT INTO {s}.series (ns, series, at_ms, data) "
                "SELECT %s, %s, %s, %s WHERE %s >= %s",
                (
                    self.ns,
                    series,
                    keep_from_ms,
                    data,
                    self.ns,
                    series,
                    at_ms,
                    data,
                    at_ms,
                    keep_from_ms,
                ),
                _none,
            )
        )

    def snapshots(self, from_ms: int, series: str = "snapshots") -> list[tuple[int, bytes]]:
        return self.run(
            Call(
                f"SELECT at_ms, data FROM {self.schema}.series "
                "WHERE ns = %s AND series = %s AND at_ms >= %s ORDER BY at_ms, n",
                (self.ns, series, from_ms),
                lambda rows: [(int(a), bytes(d)) for a, d in rows],
                rows=True,
            )
        )

    # -- the supervisors' autoscaler records

    def put_autoscaler(self, supervisor_id: str, record: bytes) -> None:
        self.run(self._put("autoscaler", supervisor_id, record, None))

    def drop_autoscaler(self, supervisor_ids: Sequence[str]) -> None:
        self._drop("autoscaler", supervisor_ids)

    def autoscaler_records(self) -> dict[str, bytes]:
        return self._all("autoscaler")

    # -- custom metrics (observability/custom.py)

    def _metrics_write(self, batch: MetricsWrite) -> Call[None]:
        s = self.schema
        doc = orjson.dumps(
            {
                "put": batch.put,
                "counts": batch.counts,
                "amounts": batch.amounts,
                "gauges": {k: [at, v] for k, (at, v) in batch.gauges.items()},
            }
        )
        return Call(f"SELECT {s}.metrics_write(%s, %s::jsonb)", (self.ns, doc.decode()), _none)

    def metrics_write(self, batch: MetricsWrite) -> None:
        self.run(self._metrics_write(batch))

    async def metrics_write_async(self, batch: MetricsWrite) -> None:
        await self.run_async(self._metrics_write(batch))

    def metrics_read(self) -> tuple[dict[str, str], dict[str, tuple[int, float]]]:
        fields = {k: v.decode() for k, v in self._all("metric").items()}
        gauges = {}
        for k, v in self._all("gauge").items():
            at, value = orjson.loads(v)
            gauges[k] = (int(at), float(value))
        return fields, gauges
