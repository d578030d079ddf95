"""The examples of docs/workflows.md run as they are, in order, in one namespace (on the
in-memory broker, as the page says)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[2] / "docs" / "workflows.md"


def test_every_example_of_the_workflows_guide_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) >= 8
    namespace: dict[str, Any] = {"__name__": "workflows_guide"}
    for n, block in enumerate(blocks):
        try:
            exec(compile(block, f"{DOC.name}, example {n + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"example {n + 1} of {DOC.name} failed:\n{block}") from exc
    namespace["tq"].close()
