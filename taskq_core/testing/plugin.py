"""taskq's pytest plugin: the entry point (``pytest11``) pytest loads wherever taskq is
installed. Loaded, it stays dormant: it declares its options and the ``taskq`` marker and
nothing else, so a project that does not opt in sees no fixture and no change.

It becomes active (registers the ``taskq_*`` fixtures of :mod:`taskq_core.testing.fixtures`)
when the project opts in, by any of:

- ``taskq_plugin = true`` in the pytest configuration (``[tool.pytest.ini_options]``);
- ``-p taskq_core.testing.plugin`` on the command line (or in ``addopts``);
- ``pytest_plugins = ["taskq_core.testing.plugin"]`` in a ``conftest.py``.

The entry point's name is the module's own, so the last two load the same registration
instead of a second one (pytest refuses one module under two names). See docs/testing.md.
"""

from __future__ import annotations

from typing import Any

import pytest

NAME = "taskq_core.testing.plugin"
FIXTURES = "taskq_core.testing.fixtures"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taskq", "taskq test kit (active with taskq_plugin = true)")
    group.addoption(
        "--taskq-redis-url",
        default=None,
        help="Redis for taskq_app (each test under a key prefix of its own, deleted after); "
        "given, tests run on Redis unless their taskq marker says broker='memory'",
    )
    group.addoption(
        "--taskq-broker",
        choices=("memory", "redis"),
        default=None,
        help="the broker of taskq_app: memory (default) or redis",
    )
    parser.addini("taskq_plugin", "enable taskq's pytest fixtures", type="bool", default=False)
    parser.addini("taskq_broker", "the broker of taskq_app: memory (default) or redis")
    parser.addini("taskq_redis_url", "Redis URL for taskq_app (default redis://127.0.0.1:6379/0)")
    parser.addini(
        "taskq_app",
        "your TaskQueue as module:attribute; taskq_app then isolates it instead of a new one",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "taskq(broker='memory'|'redis', redis_url=None, app=None): how the taskq_app fixture "
        "builds this test's app",
    )
    explicit = NAME in (config.option.plugins or [])
    if config.getini("taskq_plugin") or explicit:
        activate(config)
    else:
        # pytest_plugin_registered is historic: the watcher also sees every conftest loaded
        # so far, and those loaded later while collecting
        config.pluginmanager.register(_Watcher(config), "taskq-opt-in-watcher")


def activate(config: pytest.Config) -> None:
    """Register the fixtures (once)."""
    manager = config.pluginmanager
    if manager.get_plugin(FIXTURES) is None:
        from . import fixtures

        manager.register(fixtures, FIXTURES)


class _Watcher:
    """Activates the plugin when a conftest names it in ``pytest_plugins``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_plugin_registered(self, plugin: Any) -> None:
        wanted = getattr(plugin, "pytest_plugins", ())
        if isinstance(wanted, str):
            wanted = [wanted]
        if NAME in wanted:
            activate(self.config)
