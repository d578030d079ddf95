"""PostgreSQL broker URLs: ``postgresql://user@host:port/db?schema=taskq`` (checked without
importing psycopg, so that settings name what is wrong even where it is not installed)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import TaskqError
from .schema import check_schema_name

SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def parse_url(url: str) -> tuple[str, str]:
    """The connection string for psycopg and the schema name (``?schema=``, default
    ``taskq``) of a ``postgresql://`` URL; a clear error for a URL psycopg cannot use."""
    if not is_postgres_url(url):
        raise TaskqError(f"a PostgreSQL broker URL starts with postgresql://, got {url[:12]!r}")
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "taskq"
    kept = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            kept.append((key, value))
    check_schema_name(schema)
    conninfo = urlunsplit(parts._replace(query=urlencode(kept)))
    if parts.port is None and parts.netloc.endswith(":"):
        raise TaskqError("the PostgreSQL broker URL has an empty port")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise TaskqError("the PostgreSQL broker URL's port is not a number") from None
    if not parts.path.strip("/"):
        raise TaskqError("the PostgreSQL broker URL names no database (postgresql://host/db)")
    return conninfo, schema
