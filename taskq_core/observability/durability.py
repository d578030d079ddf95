"""Redis durability: what a restart can lose, and noticing when Redis lost its data.

**Persistence in force.** :func:`persistence` reads ``appendonly``, ``appendfsync`` and
``save`` with ``CONFIG GET`` (``INFO persistence``'s ``aof_enabled`` when CONFIG is refused)
and says whether a restart can lose tasks: with ``appendonly no`` a restart loses whatever
was written since the last RDB snapshot, everything when there are no save points. Health
shows it (``components.broker.durability``) and warns (``monitoring.durability_warn``).

**Lost data.** Workers keep a marker key, ``{prefix}:marker`` (JSON: the Redis ``run_id``
it was written under, when, and the last loss seen). On start and on every tick a worker
reads it with the server's ``run_id`` (one round trip, from a thread of its own):

- marker there, same run: nothing happened;
- marker there, new run: Redis restarted and kept its data (persistence): logged, the
  marker takes the new run;
- marker gone, though this process saw it before: Redis lost its data (a restart without
  persistence when the run changed, else a flush or an eviction). Logged as an error that
  says queued tasks may have been lost, raised as the critical alert ``data_lost`` (active
  for an hour, see :data:`LOSS_ALERT_SECONDS`), and written into the new marker so that
  other processes and health see it too.

A marker missing in a process that never saw one is taken for a new deployment and
written: a loss is noticed by a process that lived through it (a running worker), not by
one started afterwards. Health only reads the marker.

A worker whose outcome is refused after such a loss says so (:func:`explain_refused`),
instead of "its lease was lost and it was delivered again": the task is gone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from ..middleware import Middleware
from ..redact import redact_text

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..brokers.base import Broker, Outcome
    from ..worker import Worker

log = logging.getLogger("taskq.durability")
_worker_log = logging.getLogger("taskq.worker")

#: seconds the ``data_lost`` alert stays active after a loss was seen
LOSS_ALERT_SECONDS = 3600.0
ALERT_KEY = "data_lost:broker"


def persistence(broker: Broker, info: dict[str, Any] | None = None) -> dict[str, Any]:
    """The persistence in force and what a restart can lose (empty for the in-memory
    broker). ``info``: the server's INFO, if the caller has it already."""
    config = broker.server_config(["appendonly", "appendfsync", "save"])
    if config:
        source = "config"
        appendonly: str | None = config.get("appendonly")
        appendfsync: str | None = config.get("appendfsync")
        save: str | None = config.get("save")
    else:
        info = broker.server_info() if info is None else info
        if not info or "aof_enabled" not in info:
            return {}
        source = "info"  # CONFIG refused: INFO knows whether AOF is on, not the save points
        appendonly = "yes" if int(info.get("aof_enabled") or 0) else "no"
        appendfsync = save = None
    warning = loss_warning(appendonly, save)
    return {
        "source": source,
        "appendonly": appendonly,
        "appendfsync": appendfsync,
        "save": save,
        "loses_tasks_on_restart": bool(warning),
        "warning": warning,
    }


def loss_warning(appendonly: str | None, save: str | None) -> str:
    """What a Redis restart loses under these settings ('' when appendonly is on)."""
    if appendonly == "yes":
        return ""
    if save == "":
        return (
            "Redis persistence is off (appendonly no, no save points): a restart loses every "
            "queued task and every acknowledged enqueue"
        )
    points = f" (save {save})" if save else ""
    return (
        "appendonly is off: a Redis restart loses the tasks enqueued since the last RDB "
        f"snapshot{points}; taskq needs appendonly yes to keep every acknowledged enqueue"
    )


def read_marker(broker: Broker) -> tuple[dict[str, Any] | None, str]:
    """The data marker (None when missing or unreadable) and the server's run id."""
    raw, run_id = broker.data_marker()
    marker = None
    if raw is not None:
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(raw)
            if isinstance(value, dict):
                marker = value
    return marker, run_id


def recent_loss(marker: dict[str, Any] | None, now_ms: int) -> dict[str, Any] | None:
    """The loss a marker records, while it is recent (:data:`LOSS_ALERT_SECONDS`)."""
    if not marker:
        return None
    lost_at = marker.get("lost_at")
    if not isinstance(lost_at, int) or now_ms - lost_at > LOSS_ALERT_SECONDS * 1000:
        return None
    return {"lost_at": lost_at, "cause": str(marker.get("lost_cause", ""))}


class DataWatch:
    """What one process knows of the marker: whether it saw one, under which run."""

    def __init__(self) -> None:
        self.seen = False
        self.run_id = ""
        self.marker: dict[str, Any] | None = None
        self._lock = threading.Lock()

    def check(self, app: TaskQueue) -> str:
        """Read the marker, react to what changed and return what happened: ``first``
        (written now), ``same``, ``restarted`` (new run, data kept) or ``lost``."""
        with self._lock:
            broker = app.broker
            marker, run_id = read_marker(broker)
            now_ms = int(time.time() * 1000)
            if marker is None:
                if not self.seen:
                    state = "first"
                    marker = {"run_id": run_id, "created_at": now_ms}
                else:
                    state = "lost"
                    cause = (
                        "Redis restarted without its data (no persistence?)"
                        if run_id != self.run_id
                        else "its keys were deleted (FLUSHDB, FLUSHALL or an eviction)"
                    )
                    marker = {
                        "run_id": run_id,
                        "created_at": now_ms,
                        "lost_at": now_ms,
                        "lost_cause": cause,
                    }
                broker.put_data_marker(orjson.dumps(marker))
            elif marker.get("run_id") != run_id:
                state = "restarted"
                marker = {**marker, "run_id": run_id}
                broker.put_data_marker(orjson.dumps(marker))
            else:
                state = "same"
            self.seen, self.run_id, self.marker = True, run_id, marker
        if state == "lost":
            report_loss(app, marker["lost_cause"], now_ms)
        elif state == "restarted":
            log.warning("Redis restarted (run %s) and kept its data (persistence)", run_id[:12])
        return state


def report_loss(app: TaskQueue, cause: str, now_ms: int) -> None:
    """Log the loss and raise the critical ``data_lost`` alert (sinks notified)."""
    from .alerts import notify

    message = (
        f"Redis lost its data: {cause}. queued tasks may have been lost (so may scheduled and "
        "running ones: any acknowledged enqueue not yet run); enqueue them again if they matter"
    )
    log.error("%s", message)
    record = {
        "key": ALERT_KEY,
        "rule": "data_lost",
        "severity": "critical",
        "subject": {"broker": "redis"},
        "message": message,
        "value": 1,
        "threshold": 0,
        "unit": "events",
        "first_seen": now_ms,
        "last_seen": now_ms,
        # active until then (alerts.evaluate leaves it alone before): no SLA rule holds it
        "until": now_ms + int(LOSS_ALERT_SECONDS * 1000),
    }
    event = {"event": "fired", "at": now_ms, **record}
    try:
        app.broker.alerts_write(
            {ALERT_KEY: orjson.dumps(record)},
            [],
            [orjson.dumps(event)],
            app.settings.monitoring.alert_history,
        )
    finally:
        notify(app, event)


def explain_refused(worker: Worker, stale: list[Outcome]) -> None:
    """Log the outcomes the broker refused: after a loss of Redis's data the task is gone;
    otherwise its lease lapsed and it was delivered again."""
    watch = next((m for m in worker.middleware if isinstance(m, DurabilityMiddleware)), None)
    if watch is None:
        _refused(worker, stale, None)
        return
    watch.run(worker.app, lambda: _refused(worker, stale, watch.loss()))


def _refused(worker: Worker, stale: list[Outcome], loss: dict[str, Any] | None) -> None:
    for o in stale:
        if loss is None:
            _worker_log.warning(
                "worker %s: outcome of task %s refused: its lease was lost and it was "
                "delivered again",
                worker.id,
                o.id,
            )
        else:
            log.error(
                "worker %s: outcome of task %s refused: Redis lost its data (%s), the task "
                "with it; it will not run again unless enqueued again",
                worker.id,
                o.id,
                loss["cause"],
            )


class DurabilityMiddleware(Middleware):
    """Checks the data marker on worker start and ticks, from a thread (one at a time):
    a slow broker never stalls the loop."""

    def __init__(self) -> None:
        self.watch = DataWatch()
        self._running = threading.Lock()

    def worker_started(self, worker: Worker) -> None:
        self.run(worker.app)

    def tick(self, worker: Worker) -> None:
        if not self._running.locked():
            self.run(worker.app)

    def loss(self) -> dict[str, Any] | None:
        """The recent loss the marker recorded when it was last checked."""
        return recent_loss(self.watch.marker, int(time.time() * 1000))

    def run(self, app: TaskQueue, then: Callable[[], None] | None = None) -> None:
        """Check the marker in a thread, then call ``then`` (if given)."""

        def target() -> None:
            with self._running:
                try:
                    self.watch.check(app)
                except Exception as exc:
                    log.warning("could not check the data marker: %s", redact_text(str(exc)))
            if then is not None:
                then()

        threading.Thread(target=target, name="taskq-durability", daemon=True).start()
