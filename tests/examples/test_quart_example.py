"""The Quart example shop under Hypercorn, with a taskq worker process or an embedded
worker."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("quart")
pytest.importorskip("hypercorn")
pytest.importorskip("httpx")

from tests.examples.shop_smoke import free_port, smoke


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_quart_example_under_hypercorn(redis_url: str, prefix: str, embedded: bool) -> None:
    port = free_port()
    bind = f"127.0.0.1:{port}"
    server = [sys.executable, "-m", "hypercorn", "quart_shop.app:app", "--bind", bind]
    smoke(
        "quart",
        server,
        "quart_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
    )
