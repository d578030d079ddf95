"""Tests of the benchmarks (their quick runs, the report and the doc)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def quick_run(script: str, out: Path, out_flag: str = "--output") -> Any:
    """Run ``benchmarks/<script> --quick``, writing to ``out``; its JSON (the test fails,
    with the script's stderr, if it exits with an error)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", out_flag, str(out)],
        check=False, capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())
