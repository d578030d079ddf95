"""``taskq db migrate`` and ``taskq db status``: the PostgreSQL broker's schema, created or
upgraded to this taskq's version (taskq_core/brokers/postgres/schema.py, docs/postgres.md).

Run ``migrate`` once per deployment, before the new workers start: it is safe to run again
(it applies only what is missing) and from several hosts at once (an advisory lock)."""

from __future__ import annotations

import click

from ..errors import TaskqError
from .common import common_options, emit_json, get_app


def _connect() -> tuple[object, str]:
    app = get_app()
    url = app.settings.broker_url
    from ..brokers.postgres.url import is_postgres_url, parse_url

    if not is_postgres_url(url):
        raise TaskqError(
            "taskq db works on a PostgreSQL broker (a postgresql:// broker_url); this "
            "app's broker is not one"
        )
    conninfo, schema = parse_url(url)
    import psycopg

    return psycopg.connect(conninfo, autocommit=True, connect_timeout=10), schema


@click.group()
def db() -> None:
    """The PostgreSQL broker's schema."""


@db.command()
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def migrate(as_json: bool) -> None:
    """Create or upgrade the schema to this taskq's version (safe to run again)."""
    from ..brokers.postgres.schema import migrate as run_migrate

    conn, schema = _connect()
    with conn:  # type: ignore[attr-defined]
        before, now = run_migrate(conn, schema)
    if as_json:
        emit_json({"schema": schema, "from": before, "to": now})
    elif before == now:
        click.echo(f"schema {schema} is at version {now}: nothing to do")
    else:
        click.echo(f"schema {schema}: version {before or 'none'} -> {now}")


@db.command(name="status")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
def db_status(as_json: bool) -> None:
    """The schema's version, and this taskq's; exit 1 unless they match."""
    from ..brokers.postgres.schema import SCHEMA_VERSION, installed_version

    conn, schema = _connect()
    with conn:  # type: ignore[attr-defined]
        found = installed_version(conn, schema)
    if as_json:
        emit_json({"schema": schema, "installed": found, "expected": SCHEMA_VERSION})
    else:
        click.echo(f"schema {schema}: installed {found or 'none'}, this taskq {SCHEMA_VERSION}")
    if found != SCHEMA_VERSION:
        click.get_current_context().exit(1)
