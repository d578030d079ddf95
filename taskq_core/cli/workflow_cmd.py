"""``taskq workflow``: one workflow by id (show, cancel, retry)."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from ..errors import WorkflowNotFound
from ..workflow.handle import WorkflowHandle
from .common import FAILURE, NOT_FOUND, CliError, common_options, console, emit_json, get_app, when

_json = click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")


def _handle(workflow_id: str) -> WorkflowHandle:
    return get_app().workflow_handle(workflow_id)


def _missing(workflow_id: str) -> CliError:
    app = get_app()
    return CliError(
        f"no workflow {workflow_id!r} under prefix {app.settings.key_prefix!r} "
        "(never enqueued, or its record expired)",
        NOT_FOUND,
    )


@click.group()
@common_options
def workflow() -> None:
    """Workflows (chains, groups, chords, DAGs): show, cancel, retry."""


@workflow.command()
@common_options
@click.argument("workflow_id")
@_json
def show(workflow_id: str, as_json: bool) -> None:
    """Show a workflow: its status and each step's state, timings, error and result."""
    try:
        info = _handle(workflow_id).info()
    except WorkflowNotFound:
        raise _missing(workflow_id) from None
    if as_json:
        emit_json(info)
        return
    out = console()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    failed = info.get("failed_step")
    rows = {
        "id": info["id"],
        "status": info["status"],
        "policy": info["policy"],
        "created": when(info.get("created_at")),
        "finished": when(info.get("finished_at")),
        "steps": ", ".join(f"{n} {state}" for state, n in sorted(info["counts"].items())),
    }
    if failed is not None:
        rows["failed at"] = f"step {failed}"
    for key, value in rows.items():
        head.add_row(key, Text(str(value)))
    out.print(head)
    table = Table(title="steps")
    for column in ("#", "task", "kind", "queue", "status", "after", "took", "error"):
        table.add_column(column)
    for step in info["steps"]:
        took = (
            f"{(step['finished_at'] - step['released_at']) / 1000:.3f}s"
            if step.get("finished_at") and step.get("released_at")
            else ""
        )
        error: Any = step.get("error") or {}
        text = f"{error.get('type', '')}: {error.get('message', '')}" if error else ""
        table.add_row(
            *(
                Text(str(v))
                for v in (
                    step["index"],
                    step.get("task") or "?",
                    step["kind"],
                    step.get("queue") or "?",
                    step["status"],
                    ",".join(map(str, step["after"])),
                    took,
                    text[:120],
                )
            )
        )
    out.print(table)
    if info["status"] == "succeeded" and "result" in info:
        out.print("[bold]result[/]")
        out.print(Text(json.dumps(info["result"], indent=2, default=str)))


@workflow.command()
@common_options
@click.argument("workflow_id")
@_json
def cancel(workflow_id: str, as_json: bool) -> None:
    """Cancel a running workflow: steps not started never run, running ones are asked to
    stop. Exit 0 when cancelled; 1 when it had finished; 5 when unknown."""
    handle = _handle(workflow_id)
    done = handle.cancel()
    status = handle.status()
    if status == "unknown":
        raise _missing(workflow_id)
    if as_json:
        emit_json({"id": workflow_id, "cancelled": done, "status": status})
    elif done:
        console().print(f"cancelled workflow [bold]{workflow_id}[/]")
    if not done:
        raise CliError(
            f"workflow {workflow_id} had finished ({status}): only a running one cancels", FAILURE
        )


@workflow.command()
@common_options
@click.argument("workflow_id")
@_json
def retry(workflow_id: str, as_json: bool) -> None:
    """Run a failed or cancelled workflow again from the steps that did not succeed.
    Exit 0 when retried; 1 when it is not failed or cancelled; 5 when unknown."""
    try:
        n = _handle(workflow_id).retry()
    except WorkflowNotFound:
        raise _missing(workflow_id) from None
    except ValueError as exc:
        raise CliError(str(exc), FAILURE) from None
    if as_json:
        emit_json({"id": workflow_id, "retried_steps": n})
    else:
        console().print(f"workflow [bold]{workflow_id}[/]: {n} step(s) to run again")
