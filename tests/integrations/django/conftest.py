"""The Django tests run only where Django is installed: without it (the tox env ``core``)
nothing in this folder is collected. Their fixtures live in fixtures.py."""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("django") is None:
    collect_ignore_glob = ["*"]
else:
    from tests.integrations.django.fixtures import (  # noqa: F401 - fixtures, found by name
        client,
        configure_taskq,
        database,
        db,
    )
