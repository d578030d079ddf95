"""``taskq enqueue`` and ``taskq inspect``: one task, by name or by id."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from ..message import stored_dict
from .common import (
    FAILURE,
    NOT_FOUND,
    USAGE,
    CliError,
    common_options,
    console,
    duration_option,
    emit_json,
    eta_option,
    get_app,
    json_option,
    when,
)

if TYPE_CHECKING:
    from ..handle import TaskHandle


@click.command()
@common_options
@click.argument("name")
@click.option(
    "--args",
    "args",
    metavar="JSON",
    default="[]",
    callback=lambda _c, _p, v: json_option(v, list),
    help="Positional arguments, a JSON array.",
)
@click.option(
    "--kwargs",
    "kwargs",
    metavar="JSON",
    default="{}",
    callback=lambda _c, _p, v: json_option(v, dict),
    help="Keyword arguments, a JSON object.",
)
@click.option("--queue", "-q", help="Queue to use instead of the task's own.")
@click.option(
    "--delay",
    metavar="DURATION",
    callback=lambda _c, _p, v: duration_option(v),
    help="Run after this long: 30s, 5m, 1h30m, 250ms (a bare number is seconds).",
)
@click.option(
    "--eta",
    metavar="ISO-8601",
    callback=lambda _c, _p, v: eta_option(v),
    help="Run at this time, with its offset: 2030-01-01T09:00:00+01:00 or ...Z.",
)
@click.option("--idempotency-key", help="Enqueue at most once per key (within idempotency_ttl).")
@click.option(
    "--expires",
    metavar="DURATION",
    callback=lambda _c, _p, v: duration_option(v),
    help="Not started within this long (30s, 5m), it is not run but recorded as expired.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def enqueue(
    *,
    name: str,
    args: list[Any],
    kwargs: dict[str, Any],
    queue: str | None,
    delay: float | None,
    eta: datetime | None,
    idempotency_key: str | None,
    expires: float | None,
    as_json: bool,
) -> None:
    """Enqueue the task NAME (registered in the --app TaskQueue)."""
    if delay is not None and eta is not None:
        raise click.UsageError("give either --delay or --eta, not both")
    app = get_app()
    app.load_imports()
    if name not in app.registry:
        if app.registry:
            known = ", ".join(sorted(app.registry)[:20])
            raise CliError(f"unknown task {name!r} (known: {known})", USAGE)
        raise CliError(
            f"unknown task {name!r}: no task is registered; pass --app MODULE:ATTR naming "
            "the TaskQueue your tasks are registered on",
            USAGE,
        )
    options: dict[str, Any] = {"expires": expires} if expires is not None else {}
    handle = app.enqueue(
        name,
        args,
        kwargs,
        queue=queue,
        delay=delay,
        eta=eta,
        idempotency_key=idempotency_key,
        **options,
    )
    info = handle.info()
    state = app.broker.get(handle.queue, handle.id)
    due_ms = None
    if state is not None and state.message:
        due_ms = stored_dict(state.message, state.id, state.queue).get("due_at")
    out = {
        "id": handle.id,
        "task": name,
        "queue": handle.queue,
        "status": info["status"],
        "due_at": due_ms,
        # a unique task (or an idempotency key) found the task already there
        "existing": handle.existing,
    }
    if as_json:
        emit_json(out)
        return
    due = f", due {when(due_ms)}" if due_ms else ""
    if handle.existing:
        due += ", already there: nothing was added"
    console().print(
        f"enqueued [bold]{handle.id}[/] (task {name}, queue {handle.queue}, {info['status']}{due})"
    )


@click.command()
@common_options
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the task as JSON.")
def inspect(task_id: str, as_json: bool) -> None:
    """Show one task: state, attempts, error and result (searched in every queue)."""
    handle = _find(task_id)
    info = handle.info()
    if as_json:
        emit_json(info)
        return
    show_task(info)


@click.command()
@common_options
@click.argument("task_id")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
def abort(task_id: str, as_json: bool) -> None:
    """Abort the task TASK_ID: cancel it if it has not started, else ask it to stop (it is
    recorded as aborted). Exit 0 when cancelled or asked; 1 when it has already finished;
    5 when unknown."""
    handle = _find(task_id)
    answer = handle.abort()
    if as_json:
        emit_json({"id": task_id, "queue": handle.queue, "status": answer})
    elif answer == "aborting":
        console().print(
            f"asked task [bold]{task_id}[/] to stop: its worker learns of it at its next lease "
            "renewal, and it is recorded as aborted"
        )
    elif answer == "cancelled":
        console().print(f"cancelled task [bold]{task_id}[/]: it had not started")
    if answer not in ("aborting", "cancelled"):
        raise CliError(f"task {task_id} is {answer}: only queued or running tasks abort", FAILURE)


def _find(task_id: str) -> TaskHandle:
    """The task ``task_id`` in any queue of the app, or exit 5 (``NOT_FOUND``)."""
    app = get_app()
    handle = app.find(task_id)
    if handle is None:
        raise CliError(
            f"no task {task_id!r} in any queue of prefix {app.settings.key_prefix!r} "
            "(never enqueued, or its result expired)",
            NOT_FOUND,
        )
    return handle


def show_task(info: dict[str, Any], extra: dict[str, str] | None = None) -> None:
    """A task description (``handle.describe``) for a person."""
    out = console()
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "id": info["id"],
        "task": str(info.get("task") or "?"),
        "queue": info["queue"],
        "status": info["status"],
        "attempts": str(info.get("attempts", 0)),
        "deliveries": str(info.get("deliveries", 0)),
        "enqueued": when(info.get("enqueued_at")),
        "finished": when(info.get("finished_at")),
        **(extra or {}),
    }
    progress = info.get("progress")
    if isinstance(progress, dict):
        text = f" {progress['text']}" if progress.get("text") else ""
        rows["progress"] = f"{progress.get('fraction', 0) * 100:.0f}%{text}"
    if info.get("abort_requested_at"):
        rows["abort"] = f"asked {when(info['abort_requested_at'])}"
    for key, value in rows.items():
        table.add_row(key, Text(value))
    out.print(table)
    if "result" in info and info["status"] == "succeeded":
        out.print("[bold]result[/]")
        out.print(Text(json.dumps(info["result"], indent=2, default=str)))
    error = info.get("error")
    if isinstance(error, dict) and error:
        out.print(f"[bold]error[/] {error.get('type', '?')}: ", end="")
        out.print(Text(str(error.get("message", ""))))
        if error.get("traceback"):
            out.print(Text(str(error["traceback"]).rstrip(), style="dim"))
