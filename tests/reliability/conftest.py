"""Fixtures shared by the fault tests."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from tests.reliability.proxy import Proxy


@pytest.fixture
def proxy(redis_url: str) -> Iterator[Proxy]:
    """A loopback fault proxy in front of the test Redis (``proxy.url``), passing bytes."""
    p = Proxy(urlparse(redis_url).port or 6379).start()
    yield p
    p.stop()
