"""docs/security.md's table of routes is the core's route table: every route, what it
exposes and who may call it by default; and the settings it documents behave as it says."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from taskq_core import TaskQueue
from taskq_core.errors import ConfigurationError
from taskq_core.http.access import CLASSES
from taskq_core.http.routes import RouteTable

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROW = re.compile(r"^\| `(GET|POST) ([^`]+)` \| ([^|]+) \| ([^|]+) \|$")


def section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_route_table_here_is_the_cores(make_app: Callable[..., TaskQueue]) -> None:
    text = section(DOC.read_text(), "HTTP routes: what each route exposes and to whom")
    documented = {}
    for line in text.splitlines():
        m = ROW.match(line.strip())
        if m:
            documented[(m[1], m[2])] = (m[3].strip(), m[4].strip())
    table = RouteTable(make_app("memory"))
    expected = {}
    for r in table.routes:
        if r.admin:
            expected[(r.method, r.path)] = ("changes state", "auth, JSON body, same site")
        else:
            access = "auth" if table.needs_auth(r) else "open"
            expected[(r.method, r.path)] = (", ".join(r.exposes), access)
    assert documented == expected
    for name in CLASSES:
        assert f"| `{name}` |" in text, name


def test_an_unknown_class_is_a_configuration_error_naming_the_key(
    make_app: Callable[..., TaskQueue],
) -> None:
    with pytest.raises(ConfigurationError, match=r"http\.expose_private"):
        make_app("memory", http={"expose_private": ["secrets"]})
