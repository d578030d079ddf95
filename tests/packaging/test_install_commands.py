"""Every ``pip install`` command in the docs works as written on a fresh clone.

The name ``taskq`` on the public package index belongs to an unrelated project, so no doc may
send a user there (``pip install taskq``, ``'taskq[flask]'``): taskq is installed from the
clone (``pip install '.[flask]'`` at its root, ``'../..[flask]'`` from an example's folder).
This test reads each command, resolves its paths from the folder the doc runs it in (an
example's README: its folder; everything else: the clone's root) and checks that each path is
this project with the extras it names, and that every other requirement is a package our own
``dev`` extra installs (so CI has tried it). ``tests/packaging/test_install.py`` installs the
built wheel with each extra for real.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = set(PROJECT["optional-dependencies"])
#: what the dev extra installs, by normalised name: requirements CI has installed
KNOWN = {
    Requirement(r).name.lower().replace("_", "-") for r in PROJECT["optional-dependencies"]["dev"]
}
_COMMAND = re.compile(r"pip install ([^`\n]+)")
_PATH_EXTRAS = re.compile(r"^(?P<path>\.{1,2}(?:/\.{1,2})*/?)(?:\[(?P<extras>[^\]]*)\])?$")


def _docs() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found += sorted((ROOT / "example_projects").glob("*/README.md"))
    return found


def _cwd(doc: Path) -> Path:
    return doc.parent if doc.parent.parent == ROOT / "example_projects" else ROOT


def problems(doc: Path, text: str) -> list[str]:
    """What is wrong with the install commands of one doc (empty when they all work)."""
    out: list[str] = []
    where = doc.relative_to(ROOT) if doc.is_relative_to(ROOT) else doc
    for match in _COMMAND.finditer(text):
        command = match.group(1).split("&&")[0].split(" #")[0].strip().rstrip(")")
        try:
            words = shlex.split(command)
        except ValueError:
            out.append(f"{where}: cannot read `pip install {command}`")
            continue
        for word in words:
            if word.startswith("-"):
                continue
            local = _PATH_EXTRAS.match(word)
            if local:
                path = (_cwd(doc) / local.group("path")).resolve()
                if path != ROOT:
                    out.append(f"{where}: `{word}` is {path}, not the clone's root {ROOT}")
                for extra in filter(None, (local.group("extras") or "").split(",")):
                    if extra.strip() not in EXTRAS:
                        out.append(f"{where}: `{word}` names no extra {extra.strip()!r}")
                continue
            name = Requirement(word).name.lower().replace("_", "-")
            if name == "taskq":
                out.append(
                    f"{where}: `pip install {command}` installs the unrelated 'taskq' from the "
                    "package index; install from the clone: pip install '.[extra]'"
                )
            elif name not in KNOWN:
                out.append(f"{where}: `{word}` is not a package the dev extra installs (untried)")
    return out


@pytest.mark.parametrize("doc", _docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_install_commands_work_as_written(doc: Path) -> None:
    assert problems(doc, doc.read_text()) == []


def test_the_check_refuses_the_package_index_and_unknown_extras() -> None:
    readme = ROOT / "README.md"
    example = ROOT / "example_projects" / "flask" / "README.md"
    assert problems(readme, "`pip install '.[flask]' gunicorn`") == []
    assert problems(example, "pip install '../..[flask]' gunicorn\n") == []
    assert "unrelated 'taskq'" in problems(readme, "`pip install 'taskq[flask]'`")[0]
    assert "unrelated 'taskq'" in problems(readme, "`pip install taskq`")[0]
    assert "names no extra 'nope'" in problems(readme, "`pip install '.[nope]'`")[0]
    assert "not the clone's root" in problems(example, "pip install '.[flask]'\n")[0]
    assert "untried" in problems(readme, "`pip install left-pad`")[0]
