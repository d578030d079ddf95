"""What every ``taskq`` command shares: global options, loading the app, exit codes, errors,
output helpers and the parsing of durations and times."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import click
import redis
from rich.console import Console

from ..app import TaskQueue
from ..config import CONFIG_ENV
from ..config.unused import unused_message, unused_variables
from ..errors import (
    BrokerRefused,
    ConfigurationError,
    TaskNotFound,
    TaskqValueError,
    UnusedConfigWarning,
)
from ..observability.heartbeat import SUPERVISOR_ENV
from ..redact import redact_text, redact_url

F = TypeVar("F", bound=Callable[..., Any])

#: exit codes; docs/cli.md lists them
OK = 0
FAILURE = 1  # the command ran and something failed (a command that needs a missing module)
USAGE = 2  # bad flags or arguments: click's own code, also for unknown task names, bad JSON
CONFIG = 3  # the configuration is invalid (config check, or any command loading it)
BROKER = 4  # the broker cannot be reached (connection refused, timeout, authentication)
NOT_FOUND = 5  # no task with that id (inspect, failed show/retry/purge)
INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """An error shown as one line ``error: ...`` on stderr, with its own exit code."""

    def __init__(self, message: str, code: int = FAILURE) -> None:
        super().__init__(redact_text(message))
        self.code = code


@dataclass(slots=True)
class State:
    """Options given to ``taskq`` or to the subcommand (the subcommand's win)."""

    app_spec: str | None = None
    config_file: str | None = None
    debug: bool = False
    app: TaskQueue | None = None


def state() -> State:
    """The :class:`State` of this invocation."""
    return click.get_current_context().ensure_object(State)


def _remember(name: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None or value is False:
            return value
        st = ctx.ensure_object(State)
        setattr(st, name, value)
        if name == "config_file":
            # user modules calling TaskQueue.from_config(), and worker processes started
            # by the supervisor, read the same file
            os.environ[CONFIG_ENV] = os.path.abspath(value)
        return value

    return callback


LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]


def log_options(f: F) -> F:
    """``--log-level`` and ``--log-format`` of the long-running commands (worker, scheduler)."""
    f = click.option(
        "--log-format",
        type=click.Choice(["console", "json"]),
        help="Default: worker.log_format of the configuration (console).",
    )(f)
    return click.option(
        "--log-level",
        type=click.Choice(LEVELS, case_sensitive=False),
        help="Default: worker.log_level of the configuration (INFO).",
    )(f)


def common_options(f: F) -> F:
    """``--app``, ``--config`` and ``--debug``, accepted before or after the command name."""
    return click.option(
        "--app",
        "app_spec",
        metavar="MODULE:ATTR",
        expose_value=False,
        callback=_remember("app_spec"),
        help="Your TaskQueue, e.g. myapp.tasks:tq; without it, one is built from configuration.",
    )(config_options(f))


def config_options(f: F) -> F:
    """``--config`` and ``--debug`` (the ``config`` commands, which need no application)."""
    f = click.option(
        "--debug",
        is_flag=True,
        default=None,
        expose_value=False,
        callback=_remember("debug"),
        help="Show tracebacks of errors.",
    )(f)
    return click.option(
        "--config",
        metavar="FILE",
        expose_value=False,
        callback=_remember("config_file"),
        help=f"Configuration file (.toml, .yaml or pyproject.toml); also {CONFIG_ENV}.",
    )(f)


def load_app(spec: str | None, broker: str | None = None, **overrides: Any) -> TaskQueue:
    """``module:attribute`` names the TaskQueue; without it, one is built from configuration
    (with ``overrides`` as explicit arguments, the highest source)."""
    if not spec:
        if broker:
            overrides["broker_url"] = broker
        return TaskQueue.from_config(**overrides)
    module_name, _, attr = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        with warnings.catch_warnings():
            # said once below, as a line a person reads, instead of a Python warning
            warnings.simplefilter("ignore", UnusedConfigWarning)
            module = importlib.import_module(module_name)
    except ImportError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise CliError(f"--app {spec}: cannot import {module_name!r} ({exc})", USAGE) from exc
        raise
    app = getattr(module, attr or "tq", None)
    if not isinstance(app, TaskQueue):
        raise CliError(
            f"--app {spec}: {module_name}.{attr or 'tq'} is not a TaskQueue "
            f"(got {type(app).__name__})",
            USAGE,
        )
    names = unused_variables()
    if names and not app.settings.from_config and SUPERVISOR_ENV not in os.environ:
        # (a supervisor's worker processes do not repeat what the supervisor said)
        click.echo(f"warning: {unused_message(names, f'--app {spec}')}", err=True)
    return app


def get_app(**overrides: Any) -> TaskQueue:
    """The application of this invocation, loaded once."""
    st = state()
    if st.app is None:
        st.app = load_app(st.app_spec, **overrides)
    return st.app


def close_app() -> None:
    """Close the application's broker connections, if one was loaded."""
    st = state()
    if st.app is not None:
        st.app.close()
        st.app = None


# -- errors


def exit_code_for(exc: BaseException) -> int:
    """The exit code of an error (see the constants above and docs/cli.md)."""
    if isinstance(exc, CliError):
        return exc.code
    if isinstance(exc, ConfigurationError):
        return CONFIG
    if isinstance(
        exc, redis.ConnectionError | redis.TimeoutError | ConnectionError | BrokerRefused
    ):
        return BROKER
    if isinstance(exc, TaskNotFound):
        return NOT_FOUND
    if isinstance(exc, TaskqValueError):
        return USAGE
    return FAILURE


def describe_error(exc: BaseException, app: TaskQueue | None) -> str:
    """One clear, redacted line (a configuration error lists each of its problems)."""
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        where = f" at {redact_url(app.broker.url)}" if app is not None else ""
        text = f"cannot reach the broker{where}: {text}"
    elif not isinstance(
        exc, CliError | TaskqValueError | ConfigurationError | TaskNotFound | BrokerRefused
    ):
        text = f"{type(exc).__name__}: {text}"
    return redact_text(text)


def report(exc: BaseException) -> int:
    """Print ``exc`` for a person (a traceback too with ``--debug``); returns the exit code."""
    st = state()
    if st.debug:
        click.echo(redact_text("".join(traceback.format_exception(exc))).rstrip(), err=True)
    click.echo(f"error: {describe_error(exc, st.app)}", err=True)
    return exit_code_for(exc)


# -- output


def console() -> Console:
    """A console for output people read (tables, colours)."""
    # soft_wrap keeps long ids on one line when stdout is a pipe (rich assumes 80 columns)
    return Console(soft_wrap=False, highlight=False)


def emit_json(data: Any) -> None:
    """One JSON document on stdout (``--json``)."""
    click.echo(json.dumps(data, indent=2, default=str))


def age(seconds: float | None) -> str:
    """``4.2s``, ``3m 05s``, ``2h 10m``, ``3d 4h``; ``-`` for none."""
    if seconds is None:
        return "-"
    s = max(0.0, seconds)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m {int(s % 60):02d}s"
    if s < 86_400:
        return f"{int(s // 3600)}h {int(s % 3600 // 60):02d}m"
    return f"{int(s // 86_400)}d {int(s % 86_400 // 3600)}h"


def when(ms: int | None) -> str:
    """An epoch-milliseconds time as local ISO-8601 (``-`` for none)."""
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000).astimezone().isoformat(timespec="seconds")


# -- parsing

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}


def parse_duration(text: str) -> float:
    """``30`` / ``30s``, ``250ms``, ``5m``, ``1h30m``, ``2d`` -> seconds."""
    t = text.strip().lower().replace(" ", "")
    try:
        value = float(t)
    except ValueError:
        pass
    else:
        if value >= 0 and value != float("inf"):
            return value
        raise ValueError(f"{text!r} is not a duration >= 0")
    parts = _DURATION_PART.findall(t)
    if not t or "".join(n + u for n, u in parts) != t:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30s, 250ms, 5m, 1h30m or 2d")
    return sum(float(n) * _UNIT[u] for n, u in parts)


def parse_eta(text: str) -> datetime:
    """An ISO-8601 time with its offset (``2030-01-01T09:00:00+01:00`` or ``...Z``)."""
    try:
        eta = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 time (e.g. 2030-01-01T09:00:00+00:00)"
        ) from None
    if eta.tzinfo is None or eta.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone: add one, e.g. {text}+00:00 or {text}Z")
    return eta


def duration_option(value: str | None) -> float | None:
    """Click callback body of ``--delay``."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def eta_option(value: str | None) -> datetime | None:
    """Click callback body of ``--eta``."""
    if value is None:
        return None
    try:
        return parse_eta(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def json_option(value: str, kind: type) -> Any:
    """Click callback body of ``--args`` (``kind`` list) and ``--kwargs`` (dict)."""
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})") from None
    if not isinstance(parsed, kind):
        want = (
            "a JSON array, e.g. '[1, \"a\"]'"
            if kind is list
            else "a JSON object, e.g. '{\"a\": 1}'"
        )
        raise click.BadParameter(f"must be {want}, got {type(parsed).__name__}")
    return parsed
