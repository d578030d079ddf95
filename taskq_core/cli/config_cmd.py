"""``taskq config show`` and ``taskq config check``."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from ..config import InvalidConfiguration, display_path, load
from ..errors import ConfigurationError
from ..redact import redact_text
from ..tls import security_warnings
from .common import CONFIG, config_options, console, emit_json, state


@click.group()
@config_options
def config() -> None:
    """The configuration: files, TASKQ_* variables and defaults (see docs/configuration.md)."""


def _file_text(path: Path | None) -> str:
    return display_path(path) if path is not None else "none"


@config.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show(as_json: bool) -> None:
    """Print the effective configuration and the source of each value (secrets hidden)."""
    loaded = load(state().config_file)
    items = loaded.items()
    if as_json:
        emit_json(
            {
                "config_file": str(loaded.sources.file) if loaded.sources.file else None,
                "settings": {
                    key: {"value": value, "source": str(origin)} for key, value, origin in items
                },
            }
        )
        return
    table = Table(
        title=f"configuration (file: {_file_text(loaded.sources.file)})", title_justify="left"
    )
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for key, value, origin in items:
        shown = "none" if value is None else json.dumps(value)
        table.add_row(
            key, Text(shown), Text(str(origin), style="dim" if origin.kind == "default" else "")
        )
    console().print(table)


@config.command()
@config_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def check(as_json: bool) -> None:
    """Validate the configuration; exit 3 listing every problem."""
    try:
        loaded = load(state().config_file)
    except InvalidConfiguration as exc:
        if as_json:
            emit_json({"valid": False, "problems": [p.as_dict() for p in exc.problems]})
        else:
            click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(CONFIG) from None
    except ConfigurationError as exc:  # no such file, or one that cannot be parsed
        if as_json:
            problem = {"key": None, "value": None, "source": None, "message": str(exc)}
            emit_json({"valid": False, "problems": [{**problem, "allowed": ""}]})
        else:
            click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(CONFIG) from None
    # valid, but unsafe: said, without failing the check
    warnings = [redact_text(w) for w in security_warnings(loaded.settings)]
    if as_json:
        emit_json(
            {
                "valid": True,
                "problems": [],
                "warnings": warnings,
                "config_file": _path(loaded.sources.file),
            }
        )
    else:
        for w in warnings:
            click.echo(f"warning: {w}", err=True)
        console().print(
            f"configuration is valid (file: {_file_text(loaded.sources.file)})", highlight=False
        )


def _path(path: object) -> str | None:
    return str(path) if path is not None else None
