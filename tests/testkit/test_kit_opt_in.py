"""The plugin is dormant until a project opts in, and each way of opting in works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import dedent, ini

USES_APP = """
from shop import signup, send_email
from taskq_core.testing import assert_enqueued


def test_uses_the_kit(taskq_app):
    signup("ada@example.com")
    assert_enqueued(send_email)
"""

ROOT = Path(__file__).resolve().parents[2]


def test_dormant_without_opt_in(shop: pytest.Pytester) -> None:
    shop.makeini(ini())
    shop.makepyfile(test_kit=dedent(USES_APP))
    fixtures = shop.runpytest_subprocess("--fixtures")
    assert "taskq_app" not in fixtures.stdout.str()
    assert "taskq_worker" not in fixtures.stdout.str()
    result = shop.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'taskq_app' not found*"])


def test_ini_option_opts_in(shop: pytest.Pytester) -> None:
    shop.makeini(ini(taskq_plugin="true", taskq_app="shop:tq"))
    shop.makepyfile(test_kit=dedent(USES_APP))
    fixtures = shop.runpytest_subprocess("--fixtures")
    fixtures.stdout.fnmatch_lines(["taskq_app*", "taskq_worker*"])


@pytest.mark.parametrize("how", ["-p", "conftest"])
def test_naming_the_plugin_opts_in(shop: pytest.Pytester, how: str) -> None:
    # the entry point loads the module already: naming it again must neither fail
    # ("Plugin already registered under a different name") nor be ignored
    shop.makeini(ini(taskq_app="shop:tq"))
    shop.makepyfile(test_kit=dedent(USES_APP))
    if how == "conftest":
        shop.makeconftest('pytest_plugins = ["taskq_core.testing.plugin"]\n')
        result = shop.runpytest_subprocess()
    else:
        result = shop.runpytest_subprocess("-p", "taskq_core.testing.plugin")
    result.assert_outcomes(passed=1)


def test_our_own_suite_is_unchanged() -> None:
    # taskq's own tests do not opt in: no taskq_* fixture appears among theirs
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-q", "tests/test_docs_refs.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "taskq_app" not in out
    assert "redis_url" in out  # the listing is there, and ours
