"""The fixtures of this folder's modules: the private PostgreSQL server's, and a broker on the
shared test database under this test's namespace."""

from collections.abc import Iterator

import pytest

from taskq_core.brokers.postgres.broker import PostgresBroker
from tests.conftest import drop_namespace
from tests.postgres.fixtures import pg_server  # noqa: F401 - a fixture, found by name


@pytest.fixture
def broker(postgres_url: str, prefix: str) -> Iterator[PostgresBroker]:
    """A PostgresBroker on this test's namespace, its rows deleted afterwards."""
    b = PostgresBroker(postgres_url, prefix=prefix)
    yield b
    b.close()
    drop_namespace(postgres_url, prefix)
