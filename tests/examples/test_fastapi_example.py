"""The FastAPI example shop under uvicorn, with a taskq worker process
or an embedded worker."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests.examples.shop_smoke import free_port, smoke


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_fastapi_example_under_uvicorn(redis_url: str, prefix: str, embedded: bool) -> None:
    port = free_port()
    server = [sys.executable, "-m", "uvicorn", "fastapi_shop.app:app", "--port", str(port)]
    smoke(
        "fastapi",
        server,
        "fastapi_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
        shutdown_line="Application shutdown complete",
    )
