"""Every test the documentation names exists.

The docs back their claims with test names; a renamed or deleted test would leave a claim
that nothing checks. This reads ``docs/**/*.md`` and ``README.md`` (outside fenced code
blocks, which hold examples) and finds three forms of reference:

- ``tests/<path>.py::name`` (also ``Class::name`` and a parametrised id ``name[id]``), or
  ``test_<file>.py::name`` naming a test file by its base name; a ``::name`` that follows
  such a reference in the same paragraph continues it (``a.py::x, ::y``);
- ``tests/<path>.py`` alone: the file exists;
- a bare identifier in backticks that starts with ``test_`` (`` `test_name` ``, optionally
  with ``[id]``): a test function of that name is defined in some ``tests/**/test_*.py``.

Test files are read with ``ast``, never imported.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
DOCS = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
# The pages whose guarantees tables must name tests: each must name at least one.
GUARANTEE_PAGES = ("docs/security.md", "docs/delivery.md", "docs/reliability.md")

_NAME = r"[A-Za-z_]\w*(?:::[A-Za-z_]\w*)?(?:\[[^\]\s`]*\])?"
PATH_REF = re.compile(
    rf"(?<![\w/.-])((?:tests/[\w/]+/)?test_\w+\.py|tests/[\w/]+\.py)(?:::({_NAME}))?"
)
CONTINUATION = re.compile(rf"(?<![\w.])::({_NAME})")
BARE_REF = re.compile(r"`(test_\w+)(?:\[[^\]`]*\])?`")


@dataclass(frozen=True)
class Ref:
    """One reference: the page and line it is on, the file (if named) and the test name."""

    page: str
    line: int
    path: str | None
    name: str | None

    def __str__(self) -> str:
        target = "::".join(x for x in (self.path, self.name) if x)
        return f"{self.page}:{self.line}: {target}"


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with their 1-based numbers."""
    out: list[tuple[int, str]] = []
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            out.append((number, line))
    return out


def references(page: Path) -> list[Ref]:
    """Every test reference on one page (see the module's docstring for the forms)."""
    return references_in(page.read_text(encoding="utf-8"), page.relative_to(ROOT).as_posix())


def references_in(text: str, rel: str) -> list[Ref]:
    """Every test reference in the text of the page ``rel``."""
    refs: list[Ref] = []
    last_path: str | None = None
    for number, line in _prose_lines(text):
        if not line.strip():
            last_path = None  # a continuation never crosses a paragraph
        covered: list[tuple[int, int]] = []
        # Paths and continuations in the order they appear, so "::y" continues the path
        # written before it on the line (or on an earlier line of the paragraph).
        found = [(m.start(), m) for m in PATH_REF.finditer(line)]
        found += [(m.start(), m) for m in CONTINUATION.finditer(line)]
        for _, m in sorted(found, key=lambda item: item[0]):
            if any(a <= m.start() < b for a, b in covered):
                continue  # the "::name" part of a path reference
            if m.re is PATH_REF:
                last_path = m.group(1)
                refs.append(Ref(rel, number, m.group(1), _strip_id(m.group(2))))
            else:  # "" (no file before it) is reported by problem()
                refs.append(Ref(rel, number, last_path or "", _strip_id(m.group(1))))
            covered.append(m.span())
        for m in BARE_REF.finditer(line):
            if not any(a <= m.start() + 1 < b for a, b in covered):
                refs.append(Ref(rel, number, None, m.group(1)))
    return refs


def _strip_id(name: str | None) -> str | None:
    return None if name is None else name.split("[", 1)[0]


@cache
def defined(path: Path) -> frozenset[str]:
    """The functions and ``Class::method`` names a test file defines, read with ``ast``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(names)


@cache
def _test_files() -> tuple[Path, ...]:
    return tuple(sorted(TESTS.rglob("test_*.py")))


def resolve(path: str) -> list[Path]:
    """The files a reference's path names: exact under the root, or by base name."""
    if "/" in path:
        return [ROOT / path] if (ROOT / path).is_file() else []
    return [p for p in _test_files() if p.name == path]


def problem(ref: Ref) -> str | None:
    """Why a reference dangles, or None when the test (or file) it names exists."""
    if ref.path == "":
        return "a '::name' that follows no file name in its paragraph"
    if ref.path is not None:
        files = resolve(ref.path)
        if not files:
            return "no such file"
        if len(files) > 1:
            return "ambiguous file name: " + ", ".join(str(f.relative_to(ROOT)) for f in files)
        if ref.name is not None and ref.name not in defined(files[0]):
            return f"{ref.name} is not defined in {files[0].relative_to(ROOT)}"
        return None
    assert ref.name is not None
    if not any(ref.name in defined(f) for f in _test_files()):
        return f"no test file defines {ref.name}"
    return None


@cache
def all_refs() -> tuple[Ref, ...]:
    return tuple(ref for page in DOCS for ref in references(page))


def test_the_docs_name_tests_at_all() -> None:
    """Guard against a parser that silently finds nothing."""
    for page in GUARANTEE_PAGES:
        named = [r for r in all_refs() if r.page == page and r.name is not None]
        assert len(named) >= 5, f"{page}: the parser found only {len(named)} test names"


def test_every_test_the_docs_name_exists() -> None:
    dangling = [f"{ref}: {why}" for ref in all_refs() if (why := problem(ref)) is not None]
    assert not dangling, "dangling test references:\n" + "\n".join(dangling)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("`tests/a/test_b.py::test_c`", [("tests/a/test_b.py", "test_c")]),
        ("(`tests/a/test_b.py::test_c[redis]`)", [("tests/a/test_b.py", "test_c")]),
        (
            "tests/a/test_b.py::test_c, ::test_d)",
            [("tests/a/test_b.py", "test_c"), ("tests/a/test_b.py", "test_d")],
        ),
        ("`test_b.py::K::test_m`", [("test_b.py", "K::test_m")]),
        ("see tests/a/harness.py and `test_x`", [("tests/a/harness.py", None), (None, "test_x")]),
        ("`test_x[memory]`, `not_a_test`, `taskq_test`", [(None, "test_x")]),
    ],
)
def test_the_reference_forms_are_recognised(
    line: str, expected: list[tuple[str | None, str | None]]
) -> None:
    found = [(r.path, r.name) for r in references_in(line, "probe.md")]
    assert found == expected


def test_examples_in_code_blocks_are_not_references() -> None:
    text = "```python\ndef test_my_fault():\n    `test_nothing`\n```\n`test_real`\n"
    assert [(r.path, r.name) for r in references_in(text, "probe.md")] == [(None, "test_real")]


def test_a_dangling_reference_is_reported() -> None:
    assert problem(Ref("d.md", 1, "tests/test_docs_refs.py", "test_no_such_test")) is not None
    assert problem(Ref("d.md", 1, None, "test_no_such_test_anywhere")) is not None
    assert problem(Ref("d.md", 1, "tests/no/such_file.py", None)) == "no such file"
    [orphan] = references_in("text\n\n::test_x here", "d.md")
    assert problem(orphan) is not None
    assert (
        problem(Ref("d.md", 1, "tests/test_docs_refs.py", "test_a_dangling_reference_is_reported"))
        is None
    )
    assert problem(Ref("d.md", 1, None, "test_a_dangling_reference_is_reported")) is None
