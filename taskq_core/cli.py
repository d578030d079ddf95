"""The ``taskq`` command line."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from .app import TaskQueue
from .errors import TaskqError
from .redact import redact_text


def load_app(spec: str | None, broker: str | None = None) -> TaskQueue:
    """``module:attribute`` names the TaskQueue; without it, one is built from configuration."""
    if not spec:
        return TaskQueue.from_config(**({"broker_url": broker} if broker else {}))
    module_name, _, attr = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "tq", None)
    if not isinstance(app, TaskQueue):
        raise click.UsageError(f"{spec} is not a TaskQueue (got {type(app).__name__})")
    return app


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """taskq: a Redis-backed task queue."""
    ctx.obj = {"debug": debug}


@main.command()
@click.option("--app", "app_spec", help="module:attribute of your TaskQueue.")
@click.option("--queues", "-Q", help="Comma-separated queues, highest priority first.")
@click.option("--concurrency", "-c", type=click.IntRange(1, 10_000), help="Tasks at once.")
@click.option("--burst", is_flag=True, help="Exit once there is nothing left to run.")
@click.option(
    "--log-level",
    default="INFO",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
def worker(
    app_spec: str | None, queues: str | None, concurrency: int | None, burst: bool, log_level: str
) -> None:
    """Run one worker process."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = load_app(app_spec)
    w = app.worker(
        queues=[q.strip() for q in queues.split(",") if q.strip()] if queues else None,
        concurrency=concurrency,
        burst=burst,
    )
    w.run()
    if w.stragglers:
        # sync tasks still stuck in threads were handed back; do not wait for them
        logging.shutdown()
        os._exit(0)


@main.command()
@click.option(
    "--broker",
    default="memory://",
    show_default=True,
    help="memory:// (no server) or a redis:// URL.",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 16))
def demo(broker: str, workers: int) -> None:
    """Run the whole system in one process with sample tasks."""
    from .demo import run_demo

    sys.exit(run_demo(broker, workers=workers))


def run() -> None:  # pragma: no cover - console script entry
    main()


if __name__ == "__main__":  # pragma: no cover
    main()


__all__ = ["TaskqError", "load_app", "main", "redact_text"]
