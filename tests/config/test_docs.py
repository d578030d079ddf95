"""docs/configuration.md is generated from the settings model and cannot drift from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taskq_core.config import markdown, settings_keys

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
REGENERATE = "python -m taskq_core.config --markdown --output docs/configuration.md"


def test_committed_page_equals_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == markdown(), (
        f"docs/configuration.md is out of date with taskq_core/settings.py: run {REGENERATE}"
    )


def test_every_key_is_listed_with_default_variable_and_meaning() -> None:
    text = DOC.read_text(encoding="utf-8")
    rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines()}
    for doc in settings_keys():
        row = rows.get(doc.key)
        assert row is not None, f"{doc.key} is missing from docs/configuration.md"
        assert f"`{doc.env}`" in row
        assert doc.description.replace("|", "\\|") in row


def test_the_generator_runs_as_a_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "taskq_core.config", "--markdown"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=60,
    )
    assert out.stdout == markdown()
