"""The message floors (decode, sign and verify, what signing adds) reach the generated page.

docs/security.md quotes ``decode_us``, ``sign_verify_us`` and ``signing_us``; the page that
shows them, docs/benchmarks.md, is written only by a full run (about 17 minutes), so this
checks the path from the floor scenario's result to the page on a results document built
from the committed ``latest.json`` with fake floor results, without running the benchmark.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import report, side  # noqa: E402
from benchmarks.doc import render  # noqa: E402

MESSAGE_KEYS = ("decode_us", "sign_verify_us", "signing_us")


def _floor_result(run: int, decode: float, sign_verify: float, signing: float) -> dict[str, Any]:
    return {
        "run": run,
        "scenario": "floor",
        "lib": "floor",
        "variant": "default",
        "result": {
            "redis_one_command_sync": 20000.0,
            "redis_one_command_async": 15000.0,
            "redis_pipeline_100": 300000.0,
            "redis_ping_after_10ms_ms": 0.2,
            "redis_ping_after_1s_ms": 0.4,
            "redis_ping_after_1s_all_ms": [0.4],
            "otel_span_us": 20.0,
            "otel_span_unsampled_us": 5.0,
            "otel_span_bare_us": 3.0,
            "decode_us": decode,
            "encode_decode_us": sign_verify - signing,
            "sign_verify_us": sign_verify,
            "signing_us": signing,
            "payload_bytes": 180,
        },
    }


def _document(raw: list[dict[str, Any]]) -> dict[str, Any]:
    """The committed results with the floor library's metrics taken from ``raw``."""
    text = (ROOT / "benchmarks/results/latest.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    data["metrics"][report.FLOOR] = report.summarise(raw, {}, ["floor"])[report.FLOOR]
    return data


def _row(page: str, key: str) -> str:
    label = report.BY_KEY[key].label
    rows = [line for line in page.splitlines() if line.startswith(f"| {label} |")]
    assert len(rows) == 1, f"{key}: {len(rows)} rows labelled {label!r}"
    return rows[0]


def test_the_message_floors_are_on_the_generated_page_with_median_and_range() -> None:
    raw = [
        _floor_result(1, 2.5, 7.25, 4.5),
        _floor_result(2, 3.0, 6.5, 4.0),
        _floor_result(3, 2.75, 8.0, 5.0),
    ]
    page = render(_document(raw), None)
    assert "| 2.75 (2.50\u20133.00) | µs CPU per message |" in _row(page, "decode_us")
    assert "| 7.25 (6.50\u20138.00) | µs CPU per message |" in _row(page, "sign_verify_us")
    assert "| 4.50 (4.00\u20135.00) | µs CPU per message |" in _row(page, "signing_us")


def test_a_run_without_the_message_floors_shows_a_dash_not_a_number() -> None:
    raw = [_floor_result(1, 2.5, 7.25, 4.5)]
    for key in MESSAGE_KEYS:
        del raw[0]["result"][key]
    page = render(_document(raw), None)
    for key in MESSAGE_KEYS:
        assert "| — |" in _row(page, key)


def test_the_floor_scenario_measures_what_the_page_shows() -> None:
    """The keys the report reads are the keys the measurement writes (real taskq code, a
    few hundred messages)."""
    measured = side.message_floor(300)
    floor_keys = {m.key for m in report.FLOOR_METRICS}
    for key in MESSAGE_KEYS:
        assert key in floor_keys
        assert measured[key] >= 0.0
    assert measured["sign_verify_us"] > measured["decode_us"] > 0.0
