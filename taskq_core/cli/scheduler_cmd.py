"""``taskq scheduler``: enqueue the app's schedules on time (or list them with ``--list``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from rich.table import Table

from ..app import TaskQueue
from ..scheduler import Scheduler
from .common import (
    FAILURE,
    CliError,
    age,
    common_options,
    console,
    emit_json,
    get_app,
    log_options,
)
from .logs import LogFormat, configure_logging


def rows(app: TaskQueue, sched: Scheduler) -> list[dict[str, Any]]:
    """One JSON-safe row per schedule, with its next run time (epoch ms)."""
    runs = sched.next_runs()
    return [{**s.describe(), "next_run_at": runs[s.name]} for s in app.schedules.values()]


def table(app: TaskQueue, sched: Scheduler) -> Table:
    """The schedules as a table a person reads; times in each schedule's own zone."""
    now = app.clock.time()
    t = Table(title=f"schedules ({len(app.schedules)})", title_justify="left")
    for col in ("schedule", "task", "queue", "when", "next run", "in"):
        t.add_column(col, no_wrap=col != "schedule")
    for row in rows(app, sched):
        zone = app.schedules[row["name"]].zone
        at = row["next_run_at"] / 1000
        t.add_row(
            row["name"],
            row["task"],
            row["queue"],
            row["spec"],
            datetime.fromtimestamp(at, zone).isoformat(timespec="seconds"),
            age(at - now),
        )
    return t


@click.command()
@common_options
@click.option("--list", "list_only", is_flag=True, help="Print the schedules and exit.")
@click.option("--json", "as_json", is_flag=True, help="With --list: one JSON document.")
@log_options
def scheduler(
    *, list_only: bool, as_json: bool, log_level: str | None, log_format: str | None
) -> None:
    """Enqueue the --app's schedules when due, until SIGTERM/SIGINT (--list: show them)."""
    if as_json and not list_only:
        raise click.UsageError("--json goes with --list")
    app = get_app()
    app.load_imports()  # schedules may be declared in the modules of `imports`
    sched = app.scheduler()
    if list_only:
        if as_json:
            emit_json({"schedules": rows(app, sched)})
        elif not app.schedules:
            click.echo("no schedules (declare them with tq.schedule(...))")
        else:
            console().print(table(app, sched))
        return
    if not app.schedules:
        raise CliError(
            "the app has no schedules: declare them with tq.schedule(...) in the --app "
            "module (or a module of `imports`)",
            FAILURE,
        )
    ws = app.settings.worker
    fmt: LogFormat = "json" if (log_format or ws.log_format) == "json" else "console"
    configure_logging(log_level or ws.log_level, fmt)
    console().print(table(app, sched))
    sched.run()
