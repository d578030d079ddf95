"""The payloads benchmark's smoke run (``benchmarks/payloads.py --quick``): a redis-server of
its own, memory per queued task, 10 KiB and 100 KiB payloads with compression off and on,
its figures written and sane."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.benchmarks import quick_run

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def test_the_payloads_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "payloads.json"
    figures = quick_run("payloads.py", out)
    memory = figures["memory_per_task"]
    assert memory["bytes_per_task"] > 0
    assert memory["stored_message_bytes"] > 0
    assert memory["enqueue_per_s"] > 0

    def case(size: int, kind: str, compressed: bool) -> dict[str, Any]:
        found: list[dict[str, Any]] = [
            r
            for r in figures["payloads"]
            if r["payload"] == size and r["kind"] == kind
            and (r["compress_above"] is not None) == compressed
        ]  # fmt: skip
        assert len(found) == 1, (size, kind, compressed)
        return found[0]

    for row in figures["payloads"]:
        assert row["tasks"] > 0
        assert row["ran"] == [row["tasks"]] * row["repetitions"]
        for key in ("enqueue_per_s", "enqueue_mb_per_s", "worker_per_s", "worker_mb_per_s"):
            assert row[key] > 0, (key, row)
        assert row["used_memory_per_task"] > 0
    for size in (10 * 1024, 100 * 1024):
        on, off = case(size, "compressible", True), case(size, "compressible", False)
        assert on["zstd_frames"] == [on["tasks"]] * on["repetitions"]
        assert sum(off["zstd_frames"]) == 0
        random_on, random_off = case(size, "random", True), case(size, "random", False)
        assert random_on["stored_bytes_per_task"] <= random_off["stored_bytes_per_task"] * 1.01
    on, off = case(100 * 1024, "compressible", True), case(100 * 1024, "compressible", False)
    assert on["stored_bytes_per_task"] <= off["stored_bytes_per_task"] / 4
