"""The PostgreSQL broker's schema: created and upgraded by ``taskq db migrate``, versioned,
in a schema of its own (``taskq`` unless the URL says ``?schema=...``).

Each version is one SQL file of ``sql/`` (``0001_init.sql``, ...), applied in order in one
transaction, under an advisory lock so that two ``migrate`` runs at once apply each file
once. A broker reads the version when it starts: none (run ``taskq db migrate``) and one
newer than this taskq knows (upgrade taskq) are refused with a clear error.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from ...errors import TaskqError

#: the schema version this taskq writes and reads
SCHEMA_VERSION = 5
#: the advisory lock ``migrate`` holds (an arbitrary constant: "taskq" in ASCII)
_LOCK = 0x7461736B71
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class SchemaError(TaskqError):
    """The database's taskq schema is missing, or newer than this taskq."""


def check_schema_name(name: str) -> str:
    """``name`` if it can name the schema (lower-case letters, digits and _), else an error
    naming what is wrong: it is written into SQL as an identifier."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise TaskqError(
            f"the PostgreSQL schema name must be lower-case letters, digits and _ (not "
            f"first), at most 63 characters: got {str(name)[:80]!r}"
        )
    return name


def _steps() -> list[tuple[int, str]]:
    files = resources.files(__package__).joinpath("sql")
    out = []
    for entry in files.iterdir():
        m = re.fullmatch(r"(\d{4})_\w+\.sql", entry.name)
        if m:
            out.append((int(m.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(out)


def installed_version(conn: Any, schema: str) -> int | None:
    """The version of the schema in the database, None when there is none."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.meta",)).fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute(f"SELECT value FROM {schema}.meta WHERE key = 'schema_version'").fetchone()
    return int(found[0]) if found else None


def migrate(conn: Any, schema: str = "taskq") -> tuple[int | None, int]:
    """Create or upgrade the schema on ``conn`` (a psycopg 3 connection): returns the version
    found and the version now. Refuses a schema newer than this taskq.

    Everything happens in one transaction (a savepoint inside one already open, as in a
    Django migration), under a transaction-level advisory lock: two runs at once apply
    each step once, and a failed step leaves the schema as it was."""
    check_schema_name(schema)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        before = installed_version(conn, schema)
        if before is not None and before > SCHEMA_VERSION:
            raise SchemaError(_too_new(schema, before))
        for version, sql in _steps():
            if before is not None and version <= before:
                continue
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            conn.execute(sql.replace("{schema}", schema))
            conn.execute(
                f"INSERT INTO {schema}.meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
    return before, SCHEMA_VERSION


def require(conn: Any, schema: str) -> None:
    """Raise :class:`SchemaError` unless the schema is there at this taskq's version."""
    version = installed_version(conn, schema)
    if version is None:
        raise SchemaError(
            f"the PostgreSQL database has no taskq schema {schema!r}: run "
            f"`taskq db migrate` (with the same broker URL) to create it"
        )
    if version > SCHEMA_VERSION:
        raise SchemaError(_too_new(schema, version))
    if version < SCHEMA_VERSION:
        raise SchemaError(
            f"the taskq schema {schema!r} is at version {version}, this taskq needs "
            f"{SCHEMA_VERSION}: run `taskq db migrate` to upgrade it"
        )


def _too_new(schema: str, version: int) -> str:
    return (
        f"the taskq schema {schema!r} is at version {version}, newer than this taskq knows "
        f"({SCHEMA_VERSION}): upgrade taskq on this host (a migration is never undone)"
    )
