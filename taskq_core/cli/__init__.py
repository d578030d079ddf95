"""The ``taskq`` command line (see docs/cli.md for every command, exit code and JSON shape).

``taskq [--app MODULE:ATTR] [--config FILE] [--debug] COMMAND ...``; the three global
options are accepted after the command name too. Errors are one line on stderr
(``error: ...``, secrets redacted) and a non-zero exit code; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import TaskqError
from ..redact import redact_text
from .common import INTERRUPTED, State, close_app, common_options, load_app, report
from .config_cmd import config
from .db_cmd import db
from .failed_cmd import failed
from .health_cmd import health
from .scheduler_cmd import scheduler
from .status_cmd import status
from .tasks_cmd import abort, enqueue, inspect
from .worker_cmd import worker
from .workflow_cmd import workflow


class TaskqGroup(click.Group):
    """Turns any error a command raises into one clear line and an exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None
        except Exception as exc:
            raise click.exceptions.Exit(report(exc)) from None
        finally:
            close_app()


@click.group(cls=TaskqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="taskq", prog_name="taskq")
@click.pass_context
def main(ctx: click.Context) -> None:
    """taskq: a Redis-backed task queue that never loses a task."""
    ctx.ensure_object(State)


@main.command()
@click.option(
    "--broker",
    default="memory://",
    show_default=True,
    help="memory:// (no server) or a redis:// URL (keys under a unique prefix, removed after).",
)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 16))
def demo(broker: str, workers: int) -> None:
    """Run the whole system in one process with sample tasks (under 30 s)."""
    from ..demo import run_demo

    sys.exit(run_demo(broker, workers=workers))


main.add_command(worker)
main.add_command(scheduler)
main.add_command(enqueue)
main.add_command(status)
main.add_command(health)
main.add_command(failed)
main.add_command(inspect)
main.add_command(abort)
main.add_command(config)
main.add_command(workflow)
main.add_command(db)


__all__ = ["TaskqError", "load_app", "main", "redact_text"]
