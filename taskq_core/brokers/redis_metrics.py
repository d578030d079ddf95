"""The Redis broker's custom metrics (observability/custom.py), mixed into
:class:`~taskq_core.brokers.redis.RedisBroker`: each operation one plan, as in
``redis_plans.py``.

Keys (``keys.py``): ``{prefix}:custom``, a HASH of counter totals, histogram buckets and
sums (added to with ``HINCRBY`` / ``HINCRBYFLOAT``, so every process's writes add up) and
the declarations; ``{prefix}:custom:gauges``, the SET of gauge series; one ZSET per gauge
series holding a single member, its latest value, scored by when it was set (ms). A write
adds its value with ``ZADD GT`` and then drops every member but the highest-scored one, so
whatever the order in which processes' writes arrive, the value set last stays: no Lua
(the documented ACL refuses ``EVAL``) and no read before the write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .redis_plans import Command, Plan, ScriptCall, _as_dict, _pairs, _s

if TYPE_CHECKING:
    from ..keys import Keys
    from .base import MetricsWrite

T = TypeVar("T")


def write_plan(keys: Keys, batch: MetricsWrite) -> Plan[None]:
    """The commands of one write, in one round trip."""
    table = keys.custom()
    commands: list[ScriptCall | Command] = []
    if batch.put:
        commands.append(("HSET", table, *[x for kv in batch.put.items() for x in kv]))
    commands += [("HINCRBY", table, f, n) for f, n in batch.counts.items()]
    commands += [("HINCRBYFLOAT", table, f, repr(x)) for f, x in batch.amounts.items()]
    if batch.gauges:
        commands.append(("SADD", keys.custom_gauges(), *batch.gauges))
    for series, (at_ms, value) in batch.gauges.items():
        key = keys.custom_gauge(series)
        commands += [("ZADD", key, "GT", at_ms, repr(value)), ("ZREMRANGEBYRANK", key, 0, -2)]
    return Plan(commands, lambda r: None)


def read_plan(keys: Keys) -> Plan[tuple[dict[str, str], list[str]]]:
    """The metrics hash and the gauge series."""

    def parse(r: list[Any]) -> tuple[dict[str, str], list[str]]:
        fields = {_s(k): _s(v) for k, v in _as_dict(r[0]).items()}
        return fields, sorted(_s(m) for m in r[1])

    return Plan([("HGETALL", keys.custom()), ("SMEMBERS", keys.custom_gauges())], parse)


def gauges_plan(keys: Keys, series: Sequence[str]) -> Plan[dict[str, tuple[int, float]]]:
    """The latest value of each gauge series (one ZRANGE each; the keys need not share a
    cluster slot)."""
    commands: list[ScriptCall | Command] = [
        ("ZRANGE", keys.custom_gauge(s), -1, -1, "WITHSCORES") for s in series
    ]

    def parse(r: list[Any]) -> dict[str, tuple[int, float]]:
        out: dict[str, tuple[int, float]] = {}
        for name, reply in zip(series, r, strict=True):
            for member, score in _pairs(reply):
                try:
                    out[name] = (int(float(score)), float(_s(member)))
                except ValueError:  # not written by taskq: ignored, as parse_stats does
                    continue
        return out

    return Plan(commands, parse)


class RedisMetrics:
    """The custom metrics' methods; ``keys``, ``run`` and ``run_async`` are RedisBroker's."""

    keys: Keys

    if TYPE_CHECKING:

        def run(self, plan: Plan[T]) -> T: ...
        async def run_async(self, plan: Plan[T]) -> T: ...

    def metrics_write(self, batch: MetricsWrite) -> None:
        self.run(write_plan(self.keys, batch))

    async def metrics_write_async(self, batch: MetricsWrite) -> None:
        await self.run_async(write_plan(self.keys, batch))

    def metrics_read(self) -> tuple[dict[str, str], dict[str, tuple[int, float]]]:
        fields, series = self.run(read_plan(self.keys))
        return fields, (self.run(gauges_plan(self.keys, series)) if series else {})
