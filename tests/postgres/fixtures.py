"""The private PostgreSQL fixture, imported by the modules that use it rather than declared in
tests/conftest.py: only they pay for an initdb, and the machine's server stays out of reach
of their kills.

::

    from tests.postgres.fixtures import pg_server  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres.server import PgServer


@pytest.fixture(scope="module")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL of the module's own, started; closed (its directory removed) after the
    module's last test. A test that kills or stops it starts it again before it ends (start()
    on a running server only waits for it), so the next test finds it answering."""
    with PgServer() as server:
        yield server
