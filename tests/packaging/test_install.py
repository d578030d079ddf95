"""taskq as a user installs it: the sdist and the wheel built from it, the wheel installed
with each extra into a fresh virtual environment, then ``taskq demo`` and an example app
run from that install alone (so the Lua scripts, every ``py.typed`` and every package data
file must be inside; nothing is read from this checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.examples.shop_smoke import free_port, smoke

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: the extras a user installs (dev and test are the contributors' own)
EXTRAS = sorted(set(PYPROJECT["project"]["optional-dependencies"]) - {"dev", "test"})
#: extra -> the import packages it must make importable
ADAPTERS = {
    extra: [f"taskq_{extra}"]
    for extra in EXTRAS
    if (ROOT / "integrations" / f"taskq_{extra}").is_dir()
}
ADAPTERS["all"] = sorted(p.name for p in (ROOT / "integrations").glob("taskq_*") if p.is_dir())
ADAPTERS["otel"] = ["opentelemetry.sdk.trace", "taskq_core.observability.tracing"]

pytestmark = pytest.mark.slow


def _run(argv: list[str], cwd: Path | None = None, timeout: float = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist, and the wheel built from it (``python -m build`` does both, in that order)."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)])
    return out


def _wheel(dist: Path) -> Path:
    (wheel,) = dist.glob("taskq-*.whl")
    return wheel


def _venv(where: Path, requirements: list[str]) -> Path:
    """A fresh virtual environment (no pip of its own: this one's pip installs into it)."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(where)])
    python = where / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *requirements])
    return python


def test_the_sdist_holds_what_the_wheel_is_built_from(dist: Path) -> None:
    (sdist,) = dist.glob("taskq-*.tar.gz")
    import tarfile

    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert "pyproject.toml" in names
    assert "README.md" in names
    lua = {p.relative_to(ROOT).as_posix() for p in (ROOT / "taskq_core" / "lua").glob("*.lua")}
    assert lua <= names, sorted(lua - names)


@pytest.mark.parametrize("extra", EXTRAS)
def test_the_wheel_installs_with_each_extra(dist: Path, tmp_path: Path, extra: str) -> None:
    python = _venv(tmp_path / "venv", [f"{_wheel(dist)}[{extra}]"])
    modules = ["taskq_core", "taskq_core.cli", *ADAPTERS.get(extra, [])]
    probe = (
        "import importlib, importlib.resources as r, sys\n"
        f"for name in {modules!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert module.__file__.startswith(sys.prefix), (name, module.__file__)\n"
        "    top = name.split('.')[0]\n"
        "    if top.startswith('taskq'):\n"
        "        assert r.files(top).joinpath('py.typed').is_file(), top\n"
        "lua = [p.name for p in r.files('taskq_core').joinpath('lua').iterdir()]\n"
        "assert '_lib.lua' in lua and 'fetch.lua' in lua, lua\n"
        "print('ok')\n"
    )
    assert _run([str(python), "-c", probe], cwd=tmp_path).strip() == "ok"


def test_the_demo_runs_from_the_installed_wheel(dist: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv", [str(_wheel(dist))])
    out = _run([str(python.parent / "taskq"), "demo"], cwd=tmp_path, timeout=120)
    assert "every task ended as expected" in out


@pytest.fixture
def starlette_venv(dist: Path, tmp_path: Path) -> Path:
    return _venv(tmp_path / "venv", [f"{_wheel(dist)}[starlette]", "uvicorn>=0.30"])


def test_an_example_app_runs_from_the_installed_wheel(
    starlette_venv: Path, redis_url: str, prefix: str
) -> None:
    """The Starlette shop under uvicorn with a worker process, both run by the fresh
    environment's Python from the example's directory: taskq comes from the wheel."""
    example = ROOT / "example_projects" / "starlette"
    where = _run(
        [str(starlette_venv), "-c", "import taskq_core; print(taskq_core.__file__)"], example
    )
    assert where.startswith(str(starlette_venv.parent.parent)), where
    port = free_port()
    smoke(
        "starlette",
        [str(starlette_venv), "-m", "uvicorn", "starlette_shop.app:app", "--port", str(port)],
        "starlette_shop.tasks",
        redis_url=redis_url,
        prefix=prefix,
        port=port,
        worker_argv=[
            str(starlette_venv),
            "-m",
            "taskq_core.cli",
            "worker",
            "--app",
            "starlette_shop.tasks:tq",
        ],
        shutdown_line="Application shutdown complete",
    )
