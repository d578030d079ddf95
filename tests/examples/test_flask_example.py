"""The Flask example shop under gunicorn, with a ``flask taskq worker`` process or an
embedded worker thread."""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("flask")
pytest.importorskip("gunicorn")

from tests.examples.shop_smoke import free_port, smoke


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_flask_example_under_gunicorn(redis_url: str, prefix: str, embedded: bool) -> None:
    port = free_port()
    server = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "flask_shop.app:app",
    ]  # fmt: skip
    smoke(
        "flask",
        server,
        "flask_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
        # the embedded worker thread is stopped (atexit) when gunicorn's worker exits
        shutdown_line="stopped 1 embedded worker(s)" if embedded else None,
        worker_argv=[sys.executable, "-m", "flask", "--app", "flask_shop.app", "taskq", "worker"],
    )
