"""What docs/contributing.md promises a contributor stays true: every route of the core's
table is in the HTTP reference (docs/monitoring.md, "Routes"), every setting is in the
configuration reference (docs/configuration.md), and every adapter package under
``integrations/`` has its guide, its row in contributing.md's adapter table, its line in
tests/frameworks.py, and its place in the wheel and in mypy's files.

Each check is a function of its inputs, so that the tests below can prove it fails on a
fake extra route, setting or adapter without editing a real file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from taskq_core.config.keys import settings_keys
from taskq_core.http.handlers import build_routes
from taskq_core.settings import BrokerSettings, Settings
from tests.frameworks import FRAMEWORKS, Framework

ROOT = Path(__file__).resolve().parents[1]
HTTP_DOC = "docs/monitoring.md"
CONFIG_DOC = "docs/configuration.md"
CONTRIBUTING = "docs/contributing.md"
REGENERATE = "python -m taskq_core.config --markdown --output docs/configuration.md"

#: a route's heading in the HTTP reference: ### `GET /jobs/{id}`
_ROUTE_HEADING = re.compile(r"^#{2,4} `([A-Z]+) (/\S*)`", re.M)


def _read(rel: str) -> str:
    return (ROOT / rel).read_text(encoding="utf-8")


# -- routes


def documented_routes(text: str) -> set[tuple[str, str]]:
    """The (method, path) pairs the HTTP reference has a heading for."""
    return {(m[1], m[2]) for m in _ROUTE_HEADING.finditer(text)}


def undocumented_routes(routes: Iterable[tuple[str, str]], text: str) -> list[str]:
    """Each route of ``routes`` without its heading in ``text``, with where to add it."""
    have = documented_routes(text)
    return [
        f"{method} {path}: not in {HTTP_DOC}; add a heading ### `{method} {path}` to its "
        "Routes section"
        for method, path in routes
        if (method, path) not in have
    ]


def test_every_route_is_documented() -> None:
    routes = [(r.method, r.path) for r in build_routes()]
    assert len(routes) >= 20, "the route table looks empty"
    missing = undocumented_routes(routes, _read(HTTP_DOC))
    assert not missing, "\n".join(missing)


def test_an_undocumented_route_is_reported() -> None:
    text = _read(HTTP_DOC)
    real = [(r.method, r.path) for r in build_routes()]
    assert undocumented_routes(real[:3], text) == []
    fake = [("DELETE", "/jobs/{id}"), ("GET", "/metrics/brand-new")]
    missing = undocumented_routes([*real[:3], *fake], text)
    assert len(missing) == 2
    assert missing[0].startswith(f"DELETE /jobs/{{id}}: not in {HTTP_DOC}; add a heading")
    # the method counts: GET /jobs/{id} is documented, POST /jobs/{id} is not
    assert ("GET", "/jobs/{id}") in documented_routes(text)
    assert undocumented_routes([("POST", "/jobs/{id}")], text) != []


# -- settings


def documented_settings(text: str) -> set[str]:
    """The dotted keys that have a row in the configuration reference."""
    return {m[1] for m in re.finditer(r"^\| `([\w.]+)` \|", text, re.M)}


def undocumented_settings(model: type[BaseModel], text: str) -> list[str]:
    """Each leaf setting of ``model`` (sections expanded, dotted) without its row."""
    have = documented_settings(text)
    return [
        f"{doc.key}: not in {CONFIG_DOC}; give the field a description= in "
        f"taskq_core/settings.py and run {REGENERATE}"
        for doc in settings_keys(model)
        if doc.key not in have
    ]


def test_every_setting_is_documented() -> None:
    keys = [doc.key for doc in settings_keys(Settings)]
    assert "worker.concurrency" in keys  # sections are expanded to dotted names
    missing = undocumented_settings(Settings, _read(CONFIG_DOC))
    assert not missing, "\n".join(missing)


class _Extended(BaseModel):
    """A settings model with a section and a key the reference does not have."""

    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    key_prefix: str = "taskq"
    brand_new_knob: int = Field(1, description="Not in the reference.")


class _Nested(BaseModel):
    worker: _Extended = Field(default_factory=_Extended)


def test_an_undocumented_setting_is_reported() -> None:
    text = _read(CONFIG_DOC)
    [top] = undocumented_settings(_Extended, text)
    assert top.startswith(f"brand_new_knob: not in {CONFIG_DOC}; give the field a description=")
    assert REGENERATE in top
    # a key of a section is named by its dotted path
    nested = undocumented_settings(_Nested, text)
    assert any(m.startswith("worker.brand_new_knob: not in") for m in nested)


# -- adapters


def adapter_packages(root: Path) -> list[str]:
    """The adapter import packages: every ``integrations/taskq_*`` directory."""
    return sorted(p.name for p in (root / "integrations").glob("taskq_*") if p.is_dir())


def _section(text: str, heading: str) -> str:
    """The text of the ``## heading`` section of a page."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def adapter_problems(
    root: Path,
    packages: Sequence[str],
    frameworks: Sequence[Framework],
    pyproject: Mapping[str, Any],
    contributing: str,
) -> list[str]:
    """What each adapter package lacks, each with where to add it."""
    wheel = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    mypy_files = pyproject["tool"]["mypy"]["files"]
    table = _section(contributing, "Adapters")
    out = []
    for package in packages:
        name = package.removeprefix("taskq_")
        if not (root / "docs" / "integrations" / f"{name}.md").is_file():
            out.append(f"{package}: no guide; write docs/integrations/{name}.md")
        if f"`{package}`" not in table:
            out.append(f"{package}: not in {CONTRIBUTING}; add a row to its Adapters table")
        if not any(fw.adapter == package for fw in frameworks):
            out.append(
                f"{package}: no framework in tests/frameworks.py uses it; add a line to "
                "FRAMEWORKS (its contract client, example and tox env come with it)"
            )
        if f"integrations/{package}" not in wheel:
            out.append(
                f"{package}: not in the wheel; add integrations/{package} to "
                "[tool.hatch.build.targets.wheel] packages in pyproject.toml"
            )
        if not {"integrations", f"integrations/{package}"} & set(mypy_files):
            out.append(f"{package}: not type-checked; add it to [tool.mypy] files")
    return out


def _pyproject() -> dict[str, Any]:
    return tomllib.loads(_read("pyproject.toml"))


def test_every_adapter_is_wired_in() -> None:
    packages = adapter_packages(ROOT)
    assert "taskq_litestar" in packages
    problems = adapter_problems(ROOT, packages, FRAMEWORKS, _pyproject(), _read(CONTRIBUTING))
    assert not problems, "\n".join(problems)


def test_an_adapter_missing_everywhere_is_reported() -> None:
    problems = adapter_problems(ROOT, ["taskq_nova"], FRAMEWORKS, _pyproject(), _read(CONTRIBUTING))
    assert problems == [
        "taskq_nova: no guide; write docs/integrations/nova.md",
        f"taskq_nova: not in {CONTRIBUTING}; add a row to its Adapters table",
        "taskq_nova: no framework in tests/frameworks.py uses it; add a line to FRAMEWORKS "
        "(its contract client, example and tox env come with it)",
        "taskq_nova: not in the wheel; add integrations/taskq_nova to "
        "[tool.hatch.build.targets.wheel] packages in pyproject.toml",
    ]


def test_an_adapter_left_out_of_mypy_is_reported() -> None:
    pyproject = _pyproject()
    pyproject["tool"]["mypy"]["files"] = ["taskq_core"]
    problems = adapter_problems(ROOT, ["taskq_flask"], FRAMEWORKS, pyproject, _read(CONTRIBUTING))
    assert problems == ["taskq_flask: not type-checked; add it to [tool.mypy] files"]


# -- the delivery path

#: a row of the delivery-path table: | step | `file` ... | `function` |
_PATH_ROW = re.compile(r"^\| [^|]+ \| `([^`]+)`[^|]* \| (?:`(\w+)`)? *\|$", re.M)


def delivery_path_problems(text: str, root: Path = ROOT) -> list[str]:
    """Each row of contributing.md's delivery-path table whose file does not exist, or whose
    function is not defined in it (``def name`` in Python, ``function name`` in Lua)."""
    section = text.split("## The delivery path", 1)[-1].split("\n## ", 1)[0]
    rows = _PATH_ROW.findall(section)
    problems = [] if rows else ["the delivery path has no table rows"]
    for rel, function in rows:
        path = root / rel
        if not path.is_file():
            problems.append(f"{rel}: no such file (delivery path, {CONTRIBUTING})")
            continue
        source = path.read_text(encoding="utf-8")
        if function and not re.search(rf"\b(?:def|function) {function}\b", source):
            problems.append(f"{rel}: no function {function} (delivery path, {CONTRIBUTING})")
    return problems


def test_the_delivery_path_names_real_functions() -> None:
    assert delivery_path_problems(_read(CONTRIBUTING)) == []


def test_a_moved_step_of_the_delivery_path_is_reported() -> None:
    text = (
        "## The delivery path\n\n| step | file | function |\n|---|---|---|\n"
        "| run | `taskq_core/worker/running.py` | `execute` |\n"
        "| gone | `taskq_core/worker.py` | `_execute` |\n"
        "| renamed | `taskq_core/worker/outcomes.py` | `_failed` |\n"
    )
    assert delivery_path_problems(text) == [
        f"taskq_core/worker.py: no such file (delivery path, {CONTRIBUTING})",
        f"taskq_core/worker/outcomes.py: no function _failed (delivery path, {CONTRIBUTING})",
    ]
