"""The Django example shop under gunicorn (SQLite, migrated first), with a ``manage.py
taskq_worker`` process or an embedded worker thread."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django")
pytest.importorskip("gunicorn")

from tests.examples.shop_smoke import EXAMPLES, free_port, smoke


@pytest.mark.slow
@pytest.mark.parametrize("embedded", [False, True], ids=["worker-process", "embedded-worker"])
def test_django_example_under_gunicorn(
    redis_url: str, prefix: str, embedded: bool, tmp_path: Path
) -> None:
    env = {"SHOP_DB": str(tmp_path / "shop.sqlite3")}
    migrated = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=EXAMPLES / "django",
        env={**os.environ, **env, "TASKQ_KEY_PREFIX": prefix},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    port = free_port()
    server = [
        sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "djshop.wsgi",
    ]  # fmt: skip
    smoke(
        "django",
        server,
        "orders.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        embedded=embedded,
        # the embedded worker thread is stopped (atexit) when gunicorn's worker exits
        shutdown_line="stopped 1 embedded worker(s)" if embedded else None,
        worker_argv=[sys.executable, "manage.py", "taskq_worker"],
        extra_env=env,
    )
