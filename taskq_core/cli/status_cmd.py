"""``taskq status``: queues and live workers, once or refreshed (``--watch``)."""

from __future__ import annotations

import importlib
import json
import signal
import time
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from ..app import TaskQueue
from ..capabilities import missing, split_queue
from ..redact import redact_url
from .common import age, common_options, console, emit_json, get_app


def read_workers(app: TaskQueue) -> list[dict[str, Any]] | None:
    """Live worker records (contract 1), or None when this installation cannot read them."""
    try:
        heartbeat = importlib.import_module("taskq_core.observability.heartbeat")
    except ImportError as exc:
        if exc.name is not None and exc.name.startswith("taskq_core.observability"):
            return None
        raise
    records: list[dict[str, Any]] = heartbeat.read_workers(app)
    return records


def snapshot(app: TaskQueue) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-safe data (the ``--json`` shape)."""
    now_ms = int(time.time() * 1000)
    workers = read_workers(app)
    queues = []
    for q in app.broker.queue_info(app.queues()):
        oldest = q.oldest_enqueued_ms
        queues.append(
            {
                "name": q.name,
                "depth": q.ready + q.delayed + q.leased,
                "ready": q.ready,
                "delayed": q.delayed,
                "in_flight": q.leased,
                "dead": q.dead,
                "waiting": q.waiting,
                "oldest_age_s": round((now_ms - oldest) / 1000, 3) if oldest else None,
                "enqueued": q.stats.get("enqueued", 0),
                "succeeded": q.stats.get("ok", 0),
                "failed": q.stats.get("failed", 0),
                "retried": q.stats.get("retry", 0),
                "throttled": q.stats.get("throttled", 0),
                "expired": q.stats.get("expired", 0),
                "aborted": q.stats.get("aborted", 0),
                # a routed queue's requirements, and those no live worker serving its
                # base queue has (None: some live worker serves it, or not known)
                "requires": sorted(split_queue(q.name)[1]),
                "unroutable": _unroutable(q.name, workers),
            }
        )
    return {
        "at": now_ms,
        "broker": redact_url(app.broker.url),
        "prefix": app.settings.key_prefix,
        "queues": queues,
        "workers": workers,
    }


def _unroutable(queue: str, workers: list[dict[str, Any]] | None) -> list[str] | None:
    """What no live worker has of routed ``queue``'s requirements, when none serves it."""
    if workers is None or not split_queue(queue)[1]:
        return None
    if any(queue in (w.get("queues") or []) for w in workers):
        return None
    return missing(queue, workers)


def render(snap: dict[str, Any]) -> RenderableType:
    """The tables of a :func:`snapshot`."""
    qt = Table(title=f"queues ({snap['broker']}, prefix {snap['prefix']})", title_justify="left")
    cols = ("queue", "ready", "delayed", "waiting", "in flight", "dead", "oldest", "done", "failed")
    for col in (*cols, "throttled", "expired", "aborted"):
        qt.add_column(col, justify="left" if col == "queue" else "right", no_wrap=True)
    for q in snap["queues"]:
        lacks = q.get("unroutable")
        qt.add_row(
            Text(f"{q['name']} (unroutable: no worker has {','.join(lacks)})", style="red")
            if lacks
            else q["name"],
            str(q["ready"]),
            str(q["delayed"]),
            str(q["waiting"]),
            str(q["in_flight"]),
            Text(str(q["dead"]), style="red" if q["dead"] else ""),
            age(q["oldest_age_s"]),
            str(q["succeeded"]),
            str(q["failed"]),
            str(q["throttled"]),
            str(q["expired"]),
            str(q["aborted"]),
        )
    workers = snap["workers"]
    if workers is None:
        return Group(qt, Text("workers: unavailable (heartbeats are not readable here)"))
    if not workers:
        return Group(qt, Text("workers: none alive"))
    wt = Table(title=f"workers ({len(workers)} alive)", title_justify="left")
    for col in ("worker", "host", "pid", "queues", "busy", "current", "rss", "seen"):
        wt.add_column(col, no_wrap=col in ("worker", "pid", "busy", "rss", "seen"))
    now_ms = snap["at"]
    for w in workers:
        current = ", ".join(
            f"{c.get('task', '?')} ({age(c.get('running_for'))})" for c in w.get("current") or []
        )
        rss = w.get("rss_bytes")
        seen = w.get("seen_at")
        wt.add_row(
            str(w.get("id", "?")),
            str(w.get("host", "?")),
            str(w.get("pid", "?")),
            ",".join(w.get("queues") or []),
            f"{w.get('busy', 0)}/{w.get('concurrency', '?')}",
            current or "-",
            f"{rss / 2**20:.0f} MB" if isinstance(rss, int | float) else "-",
            age((now_ms - seen) / 1000) + " ago" if isinstance(seen, int | float) else "-",
        )
    return Group(qt, wt)


@click.command()
@common_options
@click.option("--watch", "-w", is_flag=True, help="Refresh until Ctrl-C.")
@click.option(
    "--interval",
    type=click.FloatRange(0.1, 3600),
    default=2.0,
    show_default=True,
    help="Seconds between refreshes with --watch.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one document per refresh).")
def status(watch: bool, interval: float, as_json: bool) -> None:
    """Queues (ready, delayed, in flight, dead-lettered, oldest age) and live workers."""
    app = get_app()
    if not watch:
        snap = snapshot(app)
        emit_json(snap) if as_json else console().print(render(snap))
        return
    out = console()
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if as_json or not out.is_terminal:
            # a pipe gets one snapshot per refresh (JSON lines with --json), not screen redraws
            while not stop.asked:
                snap = snapshot(app)
                if as_json:
                    click.echo(json.dumps(snap, default=str), nl=True)
                else:
                    out.print(render(snap))
                    out.print()
                stop.sleep(interval)
            return
        with Live(render(snapshot(app)), console=out, auto_refresh=False) as live:
            while stop.sleep(interval):
                live.update(render(snapshot(app)), refresh=True)
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Stopped(Exception):
    pass


class _Stop:
    """Ctrl-C (SIGINT) and SIGTERM end a watch: at once while it sleeps, after the refresh
    under way otherwise. An interrupt raised in the middle of a Redis call could leave the
    connection pool's lock held, and closing the broker would then wait for ever (a handler
    cannot set a threading.Event either: its lock may be held by the code it interrupted)."""

    def __init__(self) -> None:
        self.asked = False
        self._sleeping = False

    def handle(self, signum: int, frame: object) -> None:
        self.asked = True
        if self._sleeping:
            raise _Stopped

    def sleep(self, seconds: float) -> bool:
        """Sleep, unless a stop was asked; whether to go on."""
        self._sleeping = True
        try:
            if not self.asked:
                time.sleep(seconds)
        finally:
            self._sleeping = False
        return not self.asked
