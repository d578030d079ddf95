"""The built wheel holds every package and package data file of the source tree.

What should be in it is read from the tree, not from pyproject.toml: ``taskq_core`` and every
``integrations/taskq_*`` directory, each file of theirs (``.py``, the Lua scripts, every
``py.typed``, templates if an adapter grows some). An adapter added under ``integrations/``
but forgotten in ``[tool.hatch.build.targets.wheel] packages`` fails here.

The wheel is built by pip with hatchling (the build backend): without build isolation when
hatchling is installed (the ``test`` and ``dev`` extras have it, so it needs no network),
else pip fetches it.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def source_packages(root: Path) -> dict[str, Path]:
    """Every import package that must ship: its name in the wheel and its directory."""
    found = {"taskq_core": root / "taskq_core"}
    for adapter in sorted((root / "integrations").glob("taskq_*")):
        if adapter.is_dir():
            found[adapter.name] = adapter
    return found


def expected_files(root: Path) -> set[str]:
    """Every file of those packages, as its path inside the wheel (caches left out)."""
    files: set[str] = set()
    for name, directory in source_packages(root).items():
        for path in directory.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"{name}/{path.relative_to(directory).as_posix()}")
    return files


def missing_from_wheel(root: Path, wheel_names: set[str]) -> list[str]:
    """What the wheel lacks, each with where to add it: a whole package, or a file of one."""
    shipped = {name.split("/", 1)[0] for name in wheel_names}
    out = [
        f"{package}: not in the wheel (add its directory to [tool.hatch.build.targets.wheel] "
        "packages in pyproject.toml)"
        for package in source_packages(root)
        if package not in shipped
    ]
    out += [
        f"{name}: not in the wheel (check hatch's include/exclude rules in pyproject.toml)"
        for name in sorted(expected_files(root) - wheel_names)
        if name.split("/", 1)[0] in shipped
    ]
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    out = tmp_path_factory.mktemp("wheel")
    argv = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        argv.append("--no-build-isolation")
    built = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    [path] = out.glob("taskq-*.whl")
    with zipfile.ZipFile(path) as zf:
        return set(zf.namelist())


def test_every_package_and_data_file_is_in_the_wheel(wheel: set[str]) -> None:
    assert {"taskq_core/lua/_lib.lua", "taskq_core/py.typed"} <= expected_files(ROOT)
    missing = missing_from_wheel(ROOT, wheel)
    assert not missing, "the built wheel lacks:\n" + "\n".join(missing)


def test_the_wheel_holds_only_the_packages(wheel: set[str]) -> None:
    tops = {name.split("/", 1)[0] for name in wheel}
    tops = {top for top in tops if not top.endswith(".dist-info")}
    assert tops == set(source_packages(ROOT)), "tests, docs or examples must not ship"


def test_a_forgotten_adapter_or_data_file_is_reported(tmp_path: Path) -> None:
    for path in (
        "taskq_core/__init__.py",
        "taskq_core/lua/x.lua",
        "integrations/taskq_old/__init__.py",
        "integrations/taskq_new/__init__.py",
        "integrations/taskq_new/py.typed",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("", encoding="utf-8")
    in_wheel = {"taskq_core/__init__.py", "taskq_old/__init__.py"}
    missing = missing_from_wheel(tmp_path, in_wheel)
    assert len(missing) == 2, missing
    assert missing[0].startswith("taskq_new: not in the wheel (add its directory to")
    assert missing[1].startswith("taskq_core/lua/x.lua: not in the wheel")
    complete = {*in_wheel, "taskq_core/lua/x.lua", "taskq_new/__init__.py", "taskq_new/py.typed"}
    assert missing_from_wheel(tmp_path, complete) == []
