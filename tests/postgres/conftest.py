"""The private PostgreSQL server's fixture, for the modules of this folder."""

from tests.postgres.fixtures import pg_server  # noqa: F401 - a fixture, found by name
