"""The aiohttp example shop under aiohttp's own runner, with a taskq worker process
or an embedded worker."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("httpx")

from tests.examples.shop_smoke import free_port, smoke


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_aiohttp_example_under_its_own_runner(redis_url: str, prefix: str, embedded: bool) -> None:
    port = free_port()
    server = [sys.executable, "-m", "aiohttp_shop", "--port", str(port)]
    smoke(
        "aiohttp",
        server,
        "aiohttp_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
    )
