"""The frameworks list (tests/frameworks.py) matches the tree, and the full test environment
(``TASKQ_TEST_ALL_FRAMEWORKS=1``) fails where a one-framework tox env skips.

The runs below are real pytest runs in a subprocess: a plugin blocks importing Flask (a
framework that is not installed) or renames Flask's contract client (a misnamed factory), and
the same tests skip without the variable and fail, naming Flask, with it.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.frameworks import (
    ALL_FRAMEWORKS_VAR,
    BY_NAME,
    FRAMEWORKS,
    TESTS,
    framework_of,
    refused_skip,
)

ROOT = TESTS.parent

BLOCK_FLASK = '''
import importlib.abc
import sys


class BlockFlask(importlib.abc.MetaPathFinder):
    """Flask is "not installed": importing it fails as a missing package does."""

    def find_spec(self, name, path=None, target=None):
        if name == "flask" or name.startswith("flask."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, BlockFlask())
'''

MISNAME_FLASK_CLIENT = """
import dataclasses

from tests import frameworks

flask = frameworks.BY_NAME["flask"]
frameworks.BY_NAME["flask"] = dataclasses.replace(flask, client_factory="flask_clinet")
"""


def run_pytest(plugin: str, tmp_path: Path, args: list[str], *, full: bool) -> tuple[int, str]:
    """Run pytest on ``args`` from the repository root with ``plugin`` loaded first."""
    (tmp_path / "guard_plugin.py").write_text(plugin, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != ALL_FRAMEWORKS_VAR}
    env["PYTHONPATH"] = str(tmp_path)
    if full:
        env[ALL_FRAMEWORKS_VAR] = "1"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "guard_plugin",
            "-p",
            "no:cacheprovider",
            "-rs",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("full", [False, True], ids=["tox-env", "full-env"])
def test_a_missing_framework_skips_in_a_tox_env_and_fails_in_the_full_one(
    tmp_path: Path, full: bool
) -> None:
    code, out = run_pytest(BLOCK_FLASK, tmp_path, ["tests/integrations/flask"], full=full)
    if not full:
        assert code == 5, out  # pytest's "no tests ran": the module skipped
        assert "could not import 'flask'" in out
        return
    assert code != 0, out
    assert "flask: flask cannot be imported" in out
    assert ALL_FRAMEWORKS_VAR in out


@pytest.mark.slow
@pytest.mark.parametrize("full", [False, True], ids=["tox-env", "full-env"])
def test_a_misnamed_contract_client_skips_in_a_tox_env_and_fails_in_the_full_one(
    tmp_path: Path, full: bool
) -> None:
    test = "tests/contract/test_routes_contract.py::test_admin_routes_need_auth[flask]"
    code, out = run_pytest(MISNAME_FLASK_CLIENT, tmp_path, [test], full=full)
    if not full:
        assert code == 0, out
        assert "1 skipped" in out
        assert "has no flask_clinet" in out
        return
    assert code != 0, out
    assert "flask: tests.contract.clients_wsgi has no flask_clinet" in out
    assert ALL_FRAMEWORKS_VAR in out


def test_which_framework_a_test_file_belongs_to() -> None:
    assert framework_of(TESTS / "integrations" / "flask" / "test_flask.py") == "flask"
    assert framework_of(TESTS / "examples" / "test_django_example.py") == "django"
    assert framework_of(TESTS / "examples" / "shop_smoke.py") is None
    assert framework_of(TESTS / "integrations" / "leaks.py") is None
    assert framework_of(TESTS / "core" / "test_worker.py") is None
    assert framework_of(ROOT / "benchmarks" / "run.py") is None


def test_only_framework_import_skips_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    flask_test = TESTS / "integrations" / "flask" / "test_flask.py"
    missing = "could not import 'flask': No module named 'flask'"
    monkeypatch.delenv(ALL_FRAMEWORKS_VAR, raising=False)
    assert refused_skip(flask_test, missing) is None  # a tox env: skipping is right
    monkeypatch.setenv(ALL_FRAMEWORKS_VAR, "1")
    message = refused_skip(flask_test, missing)
    assert message is not None
    assert message.startswith("flask: flask cannot be imported")
    # a new framework's tests, before its line in tests/frameworks.py: still refused, and told
    bottle = refused_skip(
        TESTS / "integrations" / "bottle" / "test_bottle.py", "could not import 'bottle'"
    )
    assert bottle is not None
    assert "bottle is not in tests/frameworks.py yet" in bottle
    # a version of a framework, a skip that is not about an import, a test of no framework
    django_test = TESTS / "integrations" / "django" / "test_backend.py"
    assert refused_skip(django_test, "could not import 'django.tasks': No module") is None
    assert refused_skip(flask_test, "no TLS support in this redis-server") is None
    assert refused_skip(TESTS / "core" / "test_x.py", missing) is None


# -- the list matches the tree


def test_every_framework_has_its_pieces() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = pyproject["project"]["optional-dependencies"]
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(ROOT / "tox.ini", encoding="utf-8")
    problems = []
    for fw in FRAMEWORKS:
        # keyed by the example's name, so that two frameworks of one package sharing an
        # example and its tests (a WSGI and an ASGI flavour) need them once
        example_test = f"tests/examples/test_{fw.example}_example.py"
        wants = {
            f"integrations/{fw.adapter}/__init__.py": ROOT
            / "integrations"
            / fw.adapter
            / "__init__.py",
            f"example_projects/{fw.example}/": ROOT / "example_projects" / fw.example,
            example_test: ROOT / example_test,
            f"tests/integrations/{fw.example}/": TESTS / "integrations" / fw.example,
        }
        problems += [f"{fw.name}: no {name}" for name, path in wants.items() if not path.exists()]
        if fw.extra not in extras:
            problems.append(f"{fw.name}: no extra {fw.extra!r} in pyproject.toml")
        if f"testenv:{fw.tox_env}" not in tox:
            problems.append(f"{fw.name}: no [testenv:{fw.tox_env}] in tox.ini")
    assert not problems, "tests/frameworks.py names what is not there:\n" + "\n".join(problems)


def test_the_contract_suite_runs_every_framework_of_the_list() -> None:
    from tests.contract.conftest import FRAMEWORKS as CONTRACT

    assert tuple(CONTRACT) == tuple(BY_NAME)
