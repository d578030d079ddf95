"""The process supervisor and its autoscaler: ``taskq worker --processes N|auto``.

    taskq worker --app myapp.tasks:tq --processes auto --min-processes 1 --max-processes 8

runs a supervisor that keeps between 1 and 8 worker processes, each the core worker,
restarts those that die (with backoff) and hands their tasks back at once, kills a process
whose task ran past its ``hard_timeout``, recycles processes after
``supervisor.max_tasks_per_process`` tasks or above ``supervisor.max_memory_mb``, and
scales on cluster-wide signals, publishing each decision and its reason
(``/metrics/autoscaler``). See docs/autoscaling.md.

Modules: :mod:`.decision` (the pure decision rule), :mod:`.signals` (its inputs),
:mod:`.process` (the supervisor), :mod:`.child` (a worker process), :mod:`.publish`
(contract 2).
"""

from __future__ import annotations

import os

from .decision import Autoscaler, Decision, Inputs, QueueLoad, ScalerConfig, ScalerState, decide
from .process import Supervisor, resolve_bounds
from .publish import read_autoscaler, write_autoscaler


def run_supervisor(
    app_spec: str | None,
    *,
    config_file: str | None,
    queues: list[str] | None,
    concurrency: int | None,
    processes: int | None,
    capabilities: list[str] | None = None,
    min_processes: int | None,
    max_processes: int | None,
    log_level: str,
    log_format: str,
) -> int:
    """Run the supervisor until SIGTERM/SIGINT; returns the exit code (contract 3).

    ``processes`` None means autoscaling between ``min_processes`` and ``max_processes``
    (each defaulting to the ``supervisor`` settings; the maximum to the CPU count).
    Configuration errors are raised before any process starts.
    """
    from ..cli.common import load_app
    from ..cli.logs import LogFormat, configure_logging, use_log_format
    from ..config.keys import CONFIG_ENV
    from ..startup import check_broker

    if config_file:
        # the worker processes read the same file (they inherit the environment)
        os.environ[CONFIG_ENV] = os.path.abspath(config_file)
    fmt: LogFormat = "json" if log_format == "json" else "console"
    configure_logging(log_level, fmt)
    app = load_app(app_spec)
    use_log_format(app, fmt)
    try:
        # a refused password or ACL user: exit 4 before any process starts
        check_broker(app)
        supervisor = Supervisor(
            app,
            app_spec=app_spec,
            queues=queues,
            concurrency=concurrency,
            capabilities=capabilities,
            processes=processes,
            min_processes=min_processes,
            max_processes=max_processes,
            log_level=log_level,
            log_format=fmt,
        )
        return supervisor.run()
    finally:
        app.close()


__all__ = [
    "Autoscaler",
    "Decision",
    "Inputs",
    "QueueLoad",
    "ScalerConfig",
    "ScalerState",
    "Supervisor",
    "decide",
    "read_autoscaler",
    "resolve_bounds",
    "run_supervisor",
    "write_autoscaler",
]
