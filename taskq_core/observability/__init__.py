"""Observability: every figure of the cluster, read from the broker by any process.

Workers write as they go: counters and histograms (:mod:`.metrics`, batched with their
settle round trips), heartbeats with RSS and memory trend (:mod:`.heartbeat`), task log
lines (:mod:`.logs`) and, with the ``otel`` extra, spans (:mod:`.tracing`). Any process
reads them back: :mod:`.facade` (the plain-dict figures every HTTP route returns),
:mod:`.health`, :mod:`.alerts` (SLA rules and alert state), :mod:`.diagnostics` and
:mod:`.prometheus`.

Every TaskQueue registers the metrics, heartbeat, alert, task log and custom metrics
middleware when it is made (``monitoring.metrics`` and ``monitoring.task_logs`` turn metrics
and task logs off). An application's own counters, gauges and histograms are
:mod:`.custom`'s (``tq.metrics``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..middleware import Middleware

if TYPE_CHECKING:
    from ..app import TaskQueue


def install_defaults(app: TaskQueue) -> None:
    """Register the default middleware on ``app`` (once; safe to call again)."""
    from .alerts import AlertMiddleware
    from .custom import CustomMetricsMiddleware
    from .durability import DurabilityMiddleware
    from .heartbeat import HeartbeatMiddleware
    from .logs import TaskLogMiddleware
    from .metrics import MetricsMiddleware

    m = app.settings.monitoring
    have = {type(h) for h in app.middleware}
    wanted: list[tuple[bool, type[Middleware], Callable[[], Middleware]]] = [
        (m.metrics, MetricsMiddleware, MetricsMiddleware),
        (True, HeartbeatMiddleware, lambda: HeartbeatMiddleware(m)),
        (True, AlertMiddleware, AlertMiddleware),
        (True, DurabilityMiddleware, DurabilityMiddleware),
        (
            m.task_logs,
            TaskLogMiddleware,
            lambda: TaskLogMiddleware(app.settings.worker.log_format, m.log_args, m.log_results),
        ),
        (True, CustomMetricsMiddleware, CustomMetricsMiddleware),
    ]
    for enabled, kind, make in wanted:
        if enabled and kind not in have:
            app.middleware.append(make())
    if m.tracing:
        from .tracing import instrument

        instrument(app)


__all__ = ["install_defaults"]
