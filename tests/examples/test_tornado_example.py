"""The Tornado example shop under Tornado's own server, with a taskq worker process or an
embedded worker on its IOLoop."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("tornado")
pytest.importorskip("httpx")

from tests.examples.shop_smoke import free_port, smoke


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_tornado_example_under_its_own_server(redis_url: str, prefix: str, embedded: bool) -> None:
    port = free_port()
    server = [sys.executable, "-m", "tornado_shop.server", "--port", str(port)]
    smoke(
        "tornado",
        server,
        "tornado_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
        # serving() stopped the embedded worker on SIGTERM; else the server's own last line
        shutdown_line="stopped 1 embedded worker(s)" if embedded else "shop: shutdown complete",
    )
