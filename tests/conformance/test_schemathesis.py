"""schemathesis, a client we did not write, against the OpenAPI document as served by a real
sync server (gunicorn + Flask) and a real async one (uvicorn + Starlette), with every check
(server errors, status codes, content types, headers, response schemas, negative and positive
data, auth, methods) in its coverage, fuzzing and stateful phases.

Bounded for CI (``TASKQ_SCHEMATHESIS_EXAMPLES``, default 25 per operation) and seeded so a
run is repeatable (``TASKQ_SCHEMATHESIS_SEED`` to explore others).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from tests.examples.shop_smoke import ADMIN_TOKEN, EXAMPLES, free_port, process, wait_until_serving

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = os.environ.get("TASKQ_SCHEMATHESIS_EXAMPLES", "25")
SEED = os.environ.get("TASKQ_SCHEMATHESIS_SEED", "20261205")


def _servers(port: int) -> dict[str, tuple[str, list[str]]]:
    return {
        "flask-gunicorn": (
            "flask",
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "flask_shop.app:app"],
        ),
        "starlette-uvicorn": (
            "starlette",
            [sys.executable, "-m", "uvicorn", "starlette_shop.app:app", "--port", str(port)],
        ),
    }  # fmt: skip


@pytest.mark.parametrize("server", ["flask-gunicorn", "starlette-uvicorn"])
def test_schemathesis_finds_nothing(
    server: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "schemathesis is in the dev extra: pip install -e '.[dev]'"
    port = free_port()
    example, argv = _servers(port)[server]
    env = {
        **os.environ,
        "TASKQ_BROKER_URL": redis_url,
        "TASKQ_KEY_PREFIX": prefix,
        "SHOP_ADMIN_TOKEN": ADMIN_TOKEN,
        "SHOP_EMBEDDED_WORKERS": "0",
    }
    base = f"http://127.0.0.1:{port}"
    with process(argv, EXAMPLES / example, env) as child, httpx.Client(base_url=base) as client:
        wait_until_serving(client, child, timeout=60)
        run = [
            cli, "run", f"{base}/tasks/openapi.json",
            "--checks", "all",
            "--phases", "coverage,fuzzing,stateful",
            "--max-examples", EXAMPLES_PER_OPERATION,
            "--seed", SEED,
            "--workers", "1",
            "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
            "--no-color",
        ]  # fmt: skip
        done = _run(run, tmp_path)
        assert child.proc.poll() is None, f"the server died:\n{child.text()}"
        logged = child.text()
    assert done[0] == 0, f"schemathesis found failures against {server}:\n{done[1][-6000:]}"
    assert "Traceback" not in logged, logged


def _run(argv: list[str], cwd: Path) -> tuple[int, str]:
    import subprocess

    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr
