"""The example projects' own test suites (written with taskq's test kit) pass, run as their
READMEs say: ``pytest example_projects/<name>``, each under its own pytest.ini."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: what each suite imports beyond taskq (the tox env "core" has no framework: they skip)
NEEDS = {
    "flask": ["flask"],
    "django": ["django", "pytest_django"],
    "starlette": ["starlette", "httpx"],
    "fastapi": ["fastapi", "httpx"],
    "aiohttp": ["aiohttp", "pytest_asyncio"],
    "litestar": ["litestar", "httpx"],
    "quart": ["quart", "pytest_asyncio"],
    "sanic": ["sanic", "sanic_testing", "pytest_asyncio"],
    "falcon": ["falcon", "pytest_asyncio"],
    "tornado": ["tornado", "pytest_asyncio"],
}


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_example_suite_passes(name: str) -> None:
    missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"example_projects/{name}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed is not None, done.stdout[-2000:]
    assert int(passed.group(1)) >= 3, done.stdout[-2000:]
