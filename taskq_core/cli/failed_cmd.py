"""``taskq failed``: the dead-letter queue of every queue (list, show, retry, purge)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import click
from rich.text import Text

from ..app import TaskQueue
from ..brokers.base import DeadTask
from ..handle import describe
from ..message import stored_dict
from .common import (
    NOT_FOUND,
    CliError,
    age,
    common_options,
    console,
    emit_json,
    get_app,
)
from .tasks_cmd import show_task

PAGE = 500


def _queues(app: TaskQueue, queue: str | None) -> list[str]:
    return [queue] if queue else app.queues()


def dead_tasks(app: TaskQueue, queue: str | None, limit: int | None = None) -> Iterator[DeadTask]:
    """Dead-lettered tasks, oldest first in each queue, at most ``limit`` per queue."""
    for q in _queues(app, queue):
        offset = 0
        while limit is None or offset < limit:
            want = PAGE if limit is None else min(PAGE, limit - offset)
            page = app.broker.dead_list(q, offset, want)
            yield from page
            if len(page) < want:
                break
            offset += len(page)


def _summary(d: DeadTask) -> dict[str, Any]:
    message = stored_dict(d.message, d.id, d.queue)
    record: dict[str, Any] = json.loads(d.error) if d.error else {}
    error: dict[str, Any] = record.get("error") or {}
    if not isinstance(error, dict):
        error = {}
    return {
        "id": d.id,
        "queue": d.queue,
        "task": message.get("task", record.get("task")),
        "state": d.state,
        "dead_at": d.dead_at_ms,
        "attempts": record.get("attempts", message.get("attempt", 0)),
        "error": {"type": error.get("type"), "message": error.get("message")},
    }


def _locate(app: TaskQueue, task_id: str, queue: str | None) -> str:
    """The queue whose dead-letter queue holds ``task_id``."""
    for q in _queues(app, queue):
        st = app.broker.get(q, task_id)
        if st is not None and st.state in ("failed", "dead"):
            return q
    raise CliError(f"no task {task_id!r} in the dead-letter queue", NOT_FOUND)


queue_option = click.option("--queue", "-q", help="Only this queue (default: every queue).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
@common_options
def failed() -> None:
    """The dead-letter queue: failed and poison tasks, kept with their error."""


@failed.command("list")
@common_options
@queue_option
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Per queue."
)
@json_option
def list_(*, queue: str | None, limit: int, as_json: bool) -> None:
    """List dead-lettered tasks across queues."""
    app = get_app()
    rows = [_summary(d) for d in dead_tasks(app, queue, limit)]
    if as_json:
        emit_json({"tasks": rows, "count": len(rows)})
        return
    out = console()
    if not rows:
        out.print("the dead-letter queue is empty")
        return
    # one block per task rather than a table: ids stay whole and errors readable at any width
    now_ms = time.time() * 1000
    out.print(f"[bold]dead-letter queue: {len(rows)} task(s)[/]")
    for r in rows:
        head = Text(r["id"], style="bold")
        head.append(f"  {r['queue']}  {r['task'] or '?'}  {r['state']}  ")
        head.append(f"attempts {r['attempts']}  dead {age((now_ms - r['dead_at']) / 1000)} ago")
        out.print(head)
        err = r["error"]
        text = f"{err['type']}: {err['message']}" if err["type"] else "(no error recorded)"
        out.print(Text("    " + text[:500], style="red"))


@failed.command()
@common_options
@click.argument("task_id")
@queue_option
@json_option
def show(*, task_id: str, queue: str | None, as_json: bool) -> None:
    """Show one dead-lettered task with its error and traceback."""
    app = get_app()
    q = _locate(app, task_id, queue)
    info = describe(app.broker.get(q, task_id))
    assert info is not None  # _locate found it
    if as_json:
        emit_json(info)
        return
    show_task(info)


@failed.command()
@common_options
@click.argument("task_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Retry every dead-lettered task.")
@queue_option
@json_option
def retry(*, task_ids: tuple[str, ...], all_: bool, queue: str | None, as_json: bool) -> None:
    """Put dead-lettered tasks back in their queue: TASK_ID... or --all."""
    app = get_app()
    count = _apply(app, task_ids, all_, queue, app.broker.dead_retry)
    # an entry whose message body is missing cannot run: the broker leaves it in place
    stuck = _without_message(app, task_ids, all_, queue)
    if as_json:
        emit_json({"retried": count, **({"not_retried": stuck} if stuck else {})})
    else:
        console().print(f"retried {count} task(s)")
    if stuck:
        raise CliError(
            f"{len(stuck)} task(s) cannot be retried, their message body is missing (purge "
            f"them with `taskq failed purge`): {', '.join(stuck)}"
        )


def _without_message(
    app: TaskQueue, task_ids: tuple[str, ...], all_: bool, queue: str | None
) -> list[str]:
    """The dead-lettered tasks asked for that have no message (they stay where they are)."""
    if all_:
        return [d.id for d in dead_tasks(app, queue) if d.message is None]
    stuck = []
    for tid in dict.fromkeys(task_ids):
        for q in _queues(app, queue):
            st = app.broker.get(q, tid)
            if st is not None and st.state == "dead" and st.message is None:
                stuck.append(tid)
                break
    return stuck


@failed.command()
@common_options
@click.argument("task_ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Delete every dead-lettered task.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation with --all.")
@queue_option
@json_option
def purge(
    *, task_ids: tuple[str, ...], all_: bool, yes: bool, queue: str | None, as_json: bool
) -> None:
    """Delete dead-lettered tasks for good: TASK_ID... or --all."""
    _check_choice(task_ids, all_)
    app = get_app()
    if all_ and not yes:
        where = f"queue {queue!r}" if queue else "every queue"
        click.confirm(f"delete every dead-lettered task of {where}?", abort=True, err=True)
    count = _apply(app, task_ids, all_, queue, app.broker.dead_purge)
    if as_json:
        emit_json({"purged": count})
    else:
        console().print(f"purged {count} task(s)")


def _check_choice(task_ids: tuple[str, ...], all_: bool) -> None:
    if all_ == bool(task_ids):
        raise click.UsageError("give task ids or --all (not both)")


def _apply(
    app: TaskQueue,
    task_ids: tuple[str, ...],
    all_: bool,
    queue: str | None,
    action: Any,
) -> int:
    _check_choice(task_ids, all_)
    if all_:
        by_queue: dict[str, list[str]] = {}
        for d in dead_tasks(app, queue):
            by_queue.setdefault(d.queue, []).append(d.id)
        return sum(
            int(action(q, ids[i : i + PAGE]))
            for q, ids in by_queue.items()
            for i in range(0, len(ids), PAGE)
        )
    located = [(_locate(app, tid, queue), tid) for tid in dict.fromkeys(task_ids)]
    return sum(int(action(q, [tid])) for q, tid in located)
