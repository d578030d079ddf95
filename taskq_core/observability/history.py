"""Throughput over the last hour, a point a minute: the dashboard's chart.

The counters in the broker only grow. The alert evaluator (one process at a time,
``alerts.evaluate``) stores the cluster's totals at most once a minute in the broker's
``history`` series (a sorted set, about 62 small points, older ones dropped as it writes);
:func:`series` turns consecutive points into per-minute counts. Reading costs one range
read, whatever the number of tasks or queues. Until two points exist the chart is empty.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from ..app import TaskQueue
    from .cluster import Cluster

#: how far back the chart goes, and the spacing of its points
SPAN_MS = 3_600_000
STEP_MS = 60_000
#: the totals kept per point (public counter names)
FIELDS = ("enqueued", "succeeded", "failed", "retried", "dead")


def record(app: TaskQueue, cluster: Cluster) -> bool:
    """Store ``cluster``'s totals unless a point was stored within the last minute; True if
    it stored one."""
    now = cluster.at_ms
    broker = app.broker
    if broker.snapshots(now - STEP_MS + 1, series="history"):
        return False
    totals = cluster.totals()
    point = {"at": now, "t": {name: int(totals.get(name, 0)) for name in FIELDS}}
    broker.snapshot_add(now, orjson.dumps(point), now - SPAN_MS - 2 * STEP_MS, series="history")
    return True


def series(app: TaskQueue, now_ms: int) -> dict[str, Any]:
    """Per-minute counts over the last hour: ``points`` of ``{"at", "seconds", <field>...}``,
    each the change since the point before it (never negative: a counter that went back,
    after its keys were deleted, counts as 0)."""
    raw = app.broker.snapshots(now_ms - SPAN_MS - STEP_MS, series="history")
    kept: list[tuple[int, dict[str, int]]] = []
    for at_ms, data in raw:
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, KeyError, ValueError):
            totals = orjson.loads(data)["t"]
            kept.append((int(at_ms), {name: int(totals.get(name, 0)) for name in FIELDS}))
    points = []
    for (before_at, before), (at, now) in itertools.pairwise(kept):
        if at <= now_ms - SPAN_MS:
            continue
        point: dict[str, Any] = {"at": at, "seconds": round((at - before_at) / 1000, 3)}
        point.update({name: max(0, now[name] - before[name]) for name in FIELDS})
        points.append(point)
    return {"span_seconds": SPAN_MS // 1000, "step_seconds": STEP_MS // 1000, "points": points}
