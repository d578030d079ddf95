"""Fixtures of the configuration tests: a clean environment in an empty working directory,
and writers that put values into each source."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

SOURCES = ("toml", "yaml", "pyproject", "env", "argument")
FILE_SOURCES = ("toml", "yaml", "pyproject")
FILE_NAME = {"toml": "taskq.toml", "yaml": "taskq.yaml", "pyproject": "pyproject.toml"}


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No TASKQ_* variable from outside, and an empty working directory."""
    for name in list(os.environ):
        if name.upper().startswith("TASKQ_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """``{"worker.concurrency": 3}`` -> ``{"worker": {"concurrency": 3}}``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def to_toml(values: dict[str, Any], table: str = "") -> str:
    """A TOML document of scalars and lists (JSON literals are TOML literals for these)."""
    nested = nest(values)
    top = [f"{k} = {json.dumps(v)}" for k, v in nested.items() if not isinstance(v, dict)]
    head = f"[{table}]\n" if table else ""
    lines = [head + "\n".join(top)] if top or table else []
    for section, sub in nested.items():
        if isinstance(sub, dict):
            name = f"{table}.{section}" if table else section
            body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in sub.items())
            lines.append(f"# the {section} section\n[{name}]\n{body}")
    return "\n\n".join(lines) + "\n"


Put = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture
def put(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Put:
    """``put(source, {"dotted.key": value})`` writes the values into that source and returns
    the overrides to pass as explicit arguments (empty unless source is "argument")."""

    def write(source: str, values: dict[str, Any]) -> dict[str, Any]:
        if source == "toml":
            (tmp_path / "taskq.toml").write_text(to_toml(values))
        elif source == "pyproject":
            text = '[project]\nname = "shop"\n\n' + to_toml(values, "tool.taskq")
            (tmp_path / "pyproject.toml").write_text(text)
        elif source == "yaml":
            text = "# taskq settings\n" + yaml.safe_dump(nest(values), sort_keys=False)
            (tmp_path / "taskq.yaml").write_text(text)
        elif source == "env":
            for key, value in values.items():
                name = "TASKQ_" + key.replace(".", "__").upper()
                text = value if isinstance(value, str) else json.dumps(value)
                monkeypatch.setenv(name, text)
        elif source == "argument":
            return nest(values)
        else:  # pragma: no cover
            raise AssertionError(source)
        return {}

    return write


def line_of(path: Path, leaf: str) -> int:
    """The 1-based line on which ``leaf`` is set in ``path``."""
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip().startswith((f"{leaf} ", f"{leaf}:", f"{leaf}=")):
            return n
    raise AssertionError(f"{leaf} not in {path}")
