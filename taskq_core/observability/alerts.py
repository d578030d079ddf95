"""Alerts: the SLA rules (:mod:`.sla`) evaluated for the whole cluster, their state kept in
the broker, and their events sent to sinks.

An alert is *active* while its condition holds: it has a severity, the time it was first
seen, the last value and the threshold. When the condition ends the alert clears. Every
fired and cleared event goes to the bounded history (``monitoring.alert_history``) and to
the sinks: the ``taskq.alerts`` logger, every callable in ``TaskQueue.alert_sinks`` (post to
Slack or PagerDuty from there), and ``monitoring.alert_webhook`` as a JSON POST.

Who evaluates: any process, at most once per ``monitoring.alert_interval`` for the whole
cluster (a lock in the broker decides): every worker tries on its ticks, from a thread of
its own, and the ``/alerts`` and ``/sla`` routes try when they are read, so alerts fire even
when no worker runs (which is exactly when ``no_worker`` matters).

::

    tq.alert_sinks.append(lambda event: post_to_slack(event["message"]))
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import orjson

from ..middleware import Middleware
from ..redact import redact_text
from . import history, sla, windows
from .cluster import collect

if TYPE_CHECKING:
    from ..app import TaskQueue
    from ..worker import Worker

log = logging.getLogger("taskq.alerts")
LOCK = "alerts"


def _record(c: sla.Condition, first_seen: int, now_ms: int) -> dict[str, Any]:
    rule = sla.RULES[c.rule]
    return {
        "key": c.key,
        "rule": c.rule,
        "severity": rule.severity,
        "subject": c.subject,
        "message": c.message,
        "value": c.value,
        "threshold": c.threshold,
        "unit": rule.unit,
        "first_seen": first_seen,
        "last_seen": now_ms,
    }


def _loads(raw: bytes) -> dict[str, Any] | None:
    with contextlib.suppress(orjson.JSONDecodeError):
        value = orjson.loads(raw)
        if isinstance(value, dict):
            return value
    return None


def state(app: TaskQueue, history: int | None = None) -> dict[str, Any]:
    """Active alerts (most severe, then oldest first) and the newest events."""
    keep = app.settings.monitoring.alert_history if history is None else history
    raw_active, raw_history = app.broker.alerts_read(max(1, keep))
    active = [a for a in map(_loads, raw_active.values()) if a is not None]
    active.sort(key=lambda a: (a.get("severity") != "critical", a.get("first_seen", 0)))
    events = [e for e in map(_loads, raw_history) if e is not None][:keep]
    return {"active": active, "history": events}


def evaluate(app: TaskQueue, *, force: bool = False) -> bool:
    """Evaluate the rules now if no other process did within ``alert_interval`` (or always,
    with ``force``); apply the changes and notify the sinks. True if it evaluated."""
    m = app.settings.monitoring
    if not force and not app.broker.try_lock(LOCK, int(m.alert_interval * 1000)):
        return False
    cluster = collect(app)
    window = windows.current(app, cluster, record=True)
    history.record(app, cluster)
    now_ms = cluster.at_ms
    conditions = {c.key: c for c in sla.check(m, cluster, window)}
    raw_active, _ = app.broker.alerts_read(1)
    active = {k: a for k, a in ((k, _loads(v)) for k, v in raw_active.items()) if a is not None}
    put: dict[str, bytes] = {}
    events: list[dict[str, Any]] = []
    for key, c in conditions.items():
        before = active.get(key)
        record = _record(c, int(before["first_seen"]) if before else now_ms, now_ms)
        put[key] = orjson.dumps(record)
        if before is None:
            events.append({"event": "fired", "at": now_ms, **record})
    # an alert raised outside the SLA rules (durability.report_loss) holds until its time
    cleared = [
        k for k in active if k not in conditions and int(active[k].get("until", 0)) <= now_ms
    ]
    for key in cleared:
        events.append({**active[key], "event": "cleared", "at": now_ms})
    app.broker.alerts_write(put, cleared, [orjson.dumps(e) for e in events], m.alert_history)
    for event in events:
        notify(app, event)
    return True


def notify(app: TaskQueue, event: dict[str, Any]) -> None:
    """Send one event to every sink; a failing sink is logged and skipped."""
    if event["event"] == "fired":
        level = logging.ERROR if event.get("severity") == "critical" else logging.WARNING
        log.log(level, "alert fired: %s [%s]", event.get("message"), event.get("key"))
    else:
        log.info("alert cleared: %s [%s]", event.get("message"), event.get("key"))
    for sink in list(app.alert_sinks):
        try:
            sink(dict(event))
        except Exception:
            log.exception("alert sink %r failed", getattr(sink, "__name__", sink))
    url = app.settings.monitoring.alert_webhook
    if url:
        threading.Thread(target=post_webhook, args=(url, event), daemon=True).start()


def post_webhook(url: str, event: dict[str, Any], timeout: float = 5.0) -> bool:
    """POST ``event`` as JSON to ``url``; True on a 2xx answer. The URL is a secret (Slack
    webhook URLs are credentials): it never reaches a log line."""
    import urllib.request

    if not url.startswith(("http://", "https://")):
        log.warning("alert webhook skipped: only http and https URLs are allowed")
        return False
    request = urllib.request.Request(  # noqa: S310 - scheme checked just above
        url,
        data=orjson.dumps(event),
        headers={"content-type": "application/json", "user-agent": "taskq-alerts"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return 200 <= int(response.status) < 300
    except Exception as exc:
        log.warning("alert webhook failed: %s", redact_text(type(exc).__name__))
        return False


class AlertMiddleware(Middleware):
    """Lets workers evaluate the alerts on their ticks, from a thread, so a slow broker or
    sink never stalls a task; the broker lock keeps it to one evaluation per interval."""

    def __init__(self) -> None:
        self._next = 0.0
        self._running = threading.Lock()

    def worker_started(self, worker: Worker) -> None:
        # a worker that lives less than one interval never evaluates
        self._next = time.monotonic() + worker.app.settings.monitoring.alert_interval

    def tick(self, worker: Worker) -> None:
        now = time.monotonic()
        if now < self._next or self._running.locked():
            return
        self._next = now + worker.app.settings.monitoring.alert_interval
        threading.Thread(
            target=self._run, args=(worker.app,), name="taskq-alerts", daemon=True
        ).start()

    def _run(self, app: TaskQueue) -> None:
        with self._running:
            try:
                evaluate(app)
            except Exception as exc:
                log.warning("alert evaluation failed: %s", redact_text(str(exc)))
