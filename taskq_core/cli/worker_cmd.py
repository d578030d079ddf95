"""``taskq worker``: one worker process, or a supervisor of several (``--processes``)."""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from ..capabilities import check_capabilities
from ..config import load_settings
from ..errors import TaskqValueError
from ..startup import check_broker
from .common import FAILURE, CliError, common_options, get_app, log_options, state
from .logs import LogFormat, configure_logging, use_log_format


def processes_option(value: str) -> int | None:
    """``--processes``: a number from 1 to 1024, or ``auto`` (None: the autoscaler decides)."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text.isdigit() and 1 <= int(text) <= 1024:
        return int(text)
    raise click.BadParameter(f"{value!r} is not a number of processes from 1 to 1024, or auto")


def _queues(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [q.strip() for q in text.split(",") if q.strip()] or None


def _capabilities(text: str | None) -> list[str] | None:
    if text is None:
        return None
    try:
        return sorted(check_capabilities(text, "--capabilities"))
    except TaskqValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--capabilities") from None


@click.command()
@common_options
@click.option("--queues", "-Q", help="Comma-separated queues, highest priority first.")
@click.option(
    "--concurrency", "-c", type=click.IntRange(1, 10_000), help="Tasks at once per process."
)
@click.option(
    "--processes",
    "-p",
    metavar="N|auto",
    default="1",
    callback=lambda _c, _p, v: processes_option(v),
    show_default=True,
    help="Worker processes under a supervisor; auto lets the autoscaler choose.",
)
@click.option(
    "--min-processes", type=click.IntRange(1, 1024), help="Fewest processes (autoscaling)."
)
@click.option("--max-processes", type=click.IntRange(1, 1024), help="Most processes (autoscaling).")
@click.option("--burst", is_flag=True, help="Exit once there is nothing left to run.")
@click.option(
    "--capabilities",
    metavar="CAP,...",
    help="What this worker has (gpu,eu): it also runs tasks that require them.",
)
@log_options
def worker(
    *,
    queues: str | None,
    concurrency: int | None,
    processes: int | None,
    min_processes: int | None,
    max_processes: int | None,
    burst: bool,
    capabilities: str | None,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Run a worker: one process, or N under a supervisor (--processes N|auto)."""
    if processes != 1:
        _supervise(
            queues=queues,
            concurrency=concurrency,
            processes=processes,
            min_processes=min_processes,
            max_processes=max_processes,
            burst=burst,
            capabilities=_capabilities(capabilities),
        )
        return
    if min_processes is not None or max_processes is not None:
        raise click.UsageError("--min-processes/--max-processes need --processes N or auto")
    flags = {
        "queues": _queues(queues),
        "concurrency": concurrency,
        "log_level": log_level.upper() if log_level else None,
        "log_format": log_format,
    }
    # flags are explicit arguments: above files and TASKQ_* variables
    given = {k: v for k, v in flags.items() if v is not None}
    app = get_app(**({"worker": given} if given else {}))
    ws = app.settings.worker
    if log_level:  # an --app TaskQueue was built by its module, before the flags
        ws.log_level = flags["log_level"]  # type: ignore[assignment]
    if log_format:
        use_log_format(app, log_format)
    fmt: LogFormat = "json" if ws.log_format == "json" else "console"
    configure_logging(ws.log_level, fmt)
    # a refused password or ACL user stops here with exit code 4, not a retry loop
    check_broker(app)
    w = app.worker(
        queues=_queues(queues),
        concurrency=concurrency,
        burst=burst,
        capabilities=_capabilities(capabilities),
    )
    w.run()
    if w.stragglers:
        # sync tasks still stuck in threads were handed back; do not wait for them
        logging.shutdown()
        sys.stdout.flush()
        os._exit(0)


def _supervise(
    *,
    queues: str | None,
    concurrency: int | None,
    processes: int | None,
    min_processes: int | None,
    max_processes: int | None,
    burst: bool,
    capabilities: list[str] | None,
) -> None:
    ctx = click.get_current_context()
    if burst:
        raise click.UsageError("--burst runs one process: drop --processes")
    if min_processes and max_processes and min_processes > max_processes:
        raise click.UsageError(
            f"--min-processes ({min_processes}) is above --max-processes ({max_processes})"
        )
    try:
        # imported by name: the supervisor is optional, and heavier than a single worker
        supervisor = importlib.import_module("taskq_core.supervisor")
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("taskq_core.supervisor"):
            raise
        raise CliError(
            "--processes needs the process supervisor (taskq_core.supervisor), which this "
            "installation does not have; run one process per worker with --processes 1",
            FAILURE,
        ) from None
    st = state()
    # the level and format the children log with: flags, else the configuration
    ws = load_settings(st.config_file).worker
    code = supervisor.run_supervisor(
        st.app_spec,
        config_file=st.config_file,
        queues=_queues(queues),
        concurrency=concurrency,
        processes=processes,
        min_processes=min_processes,
        max_processes=max_processes,
        capabilities=capabilities,
        log_level=(ctx.params.get("log_level") or ws.log_level).upper(),
        log_format=ctx.params.get("log_format") or ws.log_format,
    )
    ctx.exit(int(code))
