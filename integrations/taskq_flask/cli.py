"""``flask taskq worker``: a worker process of the app's TaskQueue, inside its app context."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from taskq_core.wsgi import run_worker

taskq_cli = AppGroup("taskq", help="taskq: run workers for this app's TaskQueue.")


@taskq_cli.command("worker")
@click.option("--queues", "-Q", help="Comma-separated queues, highest priority first.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 10_000), help="Tasks at once.")
@click.option("--burst", is_flag=True, help="Exit once there is nothing left to run.")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def worker(queues: str | None, concurrency: int | None, burst: bool, log_level: str) -> None:
    """Run one worker process (SIGTERM: finish running tasks, then exit).

    The same worker as 'taskq worker', over the TaskQueue that TaskQ installed on the app;
    its tasks run inside the app context.
    """
    tq = current_app.extensions["taskq"].tq
    run_worker(tq, queues=queues, concurrency=concurrency, burst=burst, log_level=log_level)
