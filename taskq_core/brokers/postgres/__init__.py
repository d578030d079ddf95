"""The PostgreSQL broker (``postgresql://`` URLs): docs/postgres.md. ``PostgresBroker`` is
in :mod:`.broker` (it needs psycopg: ``pip install 'taskq[postgres]'``)."""

from .schema import SCHEMA_VERSION, SchemaError, migrate
from .url import is_postgres_url, parse_url

__all__ = ["SCHEMA_VERSION", "SchemaError", "is_postgres_url", "migrate", "parse_url"]
