"""The web frameworks taskq supports, in one place for every test that runs per framework.

The route contract suite (``tests/contract``), the example smoke tests (``tests/examples``),
the per-framework integration tests (``tests/integrations/<name>``) and the guards
(``tests/test_frameworks.py``, ``tests/test_contributing.py``) all read :data:`FRAMEWORKS`.
Adding a framework is one line here (see docs/contributing.md, "Adding a framework adapter").

Skip or fail: in a per-framework tox env only one framework is installed and the others'
tests skip. In the full test environment (``scripts/test``, which installs ``.[dev]`` with
every framework) a missing framework, or a contract client that is missing or misnamed, is a
mistake, so there the same tests FAIL. The full environment says so explicitly with
``TASKQ_TEST_ALL_FRAMEWORKS=1``; ``CI`` is not used for this because tox passes it through to
the per-framework envs, where skipping is right.

Two ways in: the contract suite calls :func:`unavailable` itself; the example and
integration test modules keep their plain ``pytest.importorskip("flask")`` lines, and the
hooks in tests/conftest.py turn such a skip into a failure (:func:`refused_skip`) when it
comes from ``tests/integrations/<name>/`` or ``tests/examples/test_<name>_example.py``.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

#: set to ``1`` by scripts/test: every framework must be installed and tested, none skipped
ALL_FRAMEWORKS_VAR = "TASKQ_TEST_ALL_FRAMEWORKS"


@dataclass(frozen=True)
class Framework:
    """One framework and everything the tests and the guards need to know about it."""

    #: the name in test ids, tox env names and docs (``fastapi``)
    name: str
    #: the package that must import for its tests to run (``fastapi``)
    package: str
    #: the adapter import package under ``integrations/`` (FastAPI rides on Starlette's)
    adapter: str
    #: the module of its contract client factory, and the factory's name in it
    client_module: str
    client_factory: str
    #: the pyproject extra that installs it (``pip install 'taskq[<extra>]'``)
    extra: str
    #: its directory under example_projects/
    example: str
    #: what its example's smoke test runs the example under (gunicorn, uvicorn, ...)
    server: str
    #: the tox env that tests it alone
    tox_env: str


_WSGI = "tests.contract.clients_wsgi"
_ASGI = "tests.contract.clients_asgi"

# One framework a line, so that adding one is adding a line.
FRAMEWORKS: tuple[Framework, ...] = (
    Framework("flask", "flask", "taskq_flask", _WSGI, "flask_client", "flask", "flask", "gunicorn", "flask"),  # noqa: E501
    Framework("django", "django", "taskq_django", _WSGI, "django_client", "django", "django", "gunicorn", "django"),  # noqa: E501
    Framework("starlette", "starlette", "taskq_starlette", _ASGI, "starlette_client", "starlette", "starlette", "uvicorn", "starlette"),  # noqa: E501
    Framework("fastapi", "fastapi", "taskq_starlette", _ASGI, "fastapi_client", "starlette", "fastapi", "uvicorn", "fastapi"),  # noqa: E501
    Framework("aiohttp", "aiohttp", "taskq_aiohttp", _ASGI, "aiohttp_client", "aiohttp", "aiohttp", "aiohttp", "aiohttp"),  # noqa: E501
    Framework("litestar", "litestar", "taskq_litestar", _ASGI, "litestar_client", "litestar", "litestar", "uvicorn", "litestar"),  # noqa: E501
    Framework("falcon", "falcon", "taskq_falcon", _WSGI, "falcon_client", "falcon", "falcon", "gunicorn", "falcon"),  # noqa: E501
    Framework("falcon_asgi", "falcon", "taskq_falcon", _ASGI, "falcon_asgi_client", "falcon", "falcon", "uvicorn", "falcon"),  # noqa: E501
    Framework("tornado", "tornado", "taskq_tornado", _ASGI, "tornado_client", "tornado", "tornado", "tornado", "tornado"),  # noqa: E501
    Framework("quart", "quart", "taskq_quart", _ASGI, "quart_client", "quart", "quart", "hypercorn", "quart"),  # noqa: E501
    Framework("sanic", "sanic", "taskq_sanic", _ASGI, "sanic_client", "sanic", "sanic", "sanic", "sanic"),  # noqa: E501
)  # fmt: skip

BY_NAME: dict[str, Framework] = {f.name: f for f in FRAMEWORKS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def all_required() -> bool:
    """True in the full test environment, where nothing per framework may skip."""
    return os.environ.get(ALL_FRAMEWORKS_VAR, "") == "1"


def unavailable(framework: str, why: str) -> NoReturn:
    """Skip (one framework's tox env) or fail (the full environment): ``why`` says what is
    missing; the message names the framework either way."""
    if all_required():
        pytest.fail(full_environment_message(framework, why), pytrace=False)
    pytest.skip(f"{framework}: {why}", allow_module_level=True)


TESTS = Path(__file__).resolve().parent

#: modules whose absence is a version of a framework, not a missing one: their skips stay
OPTIONAL_MODULES = {"django.tasks": "Django 6 only (the tox env django6 tests it)"}

#: the reason pytest.importorskip gives
_IMPORT_SKIP = re.compile(r"could not import '([\w.]+)'")
_EXAMPLE = re.compile(r"test_(\w+)_example\.py")


def full_environment_message(framework: str, why: str) -> str:
    """Why a per-framework test may not skip here: names the framework and what is missing."""
    listed = "" if framework in BY_NAME else f" ({framework} is not in tests/frameworks.py yet)"
    return (
        f"{framework}: {why}{listed}. {ALL_FRAMEWORKS_VAR}=1 (the full test environment, "
        "scripts/test) needs every framework installed and tested: pip install -e '.[dev]', "
        "and see tests/frameworks.py"
    )


def framework_of(path: Path) -> str | None:
    """The framework a test file belongs to by where it is, or None for other tests."""
    try:
        parts = path.resolve().relative_to(TESTS).parts
    except ValueError:
        return None
    if len(parts) >= 3 and parts[0] == "integrations":
        return parts[1]
    if len(parts) == 2 and parts[0] == "examples" and (m := _EXAMPLE.fullmatch(parts[1])):
        return m[1]
    return None


def refused_skip(path: Path, reason: str) -> str | None:
    """The failure message for an import skip the full environment does not allow (from a
    framework's test file, of a module not in :data:`OPTIONAL_MODULES`), else None."""
    if not all_required():
        return None
    framework = framework_of(path)
    found = _IMPORT_SKIP.search(reason)
    if framework is None or found is None or found[1] in OPTIONAL_MODULES:
        return None
    return full_environment_message(framework, f"{found[1]} cannot be imported: {reason}")


def need(framework: str, *modules: str) -> None:
    """Import ``framework``'s package and ``modules`` (a server, a client library), or
    skip/fail as :func:`unavailable` says."""
    for name in (BY_NAME[framework].package, *modules):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            unavailable(framework, f"{name} is not installed ({error})")


def client_module(fw: Framework) -> ModuleType:
    """The module holding ``fw``'s contract client, framework checked first."""
    need(fw.name)
    try:
        return importlib.import_module(fw.client_module)
    except ModuleNotFoundError as error:
        unavailable(fw.name, f"{fw.client_module} cannot be imported ({error})")
