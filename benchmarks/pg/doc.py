"""``postgres.json`` (``benchmarks/pg_run.py``'s output) as markdown, on stdout, to paste
into ``docs/postgres.md``:

    python -m benchmarks.pg.doc [benchmarks/results/postgres.json]

One table: a row per measure, a column per library, then taskq's ratio to each peer
(taskq on PostgreSQL where it was measured, else taskq on Redis, as the header says), and
the goal of the PostgreSQL broker: its pick-up latency within 2x of taskq on Redis. Below
it, each library's versions and settings with the documentation they are based on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.pg.common import METRICS, SIZES

DEFAULT = Path(__file__).resolve().parents[1] / "results" / "postgres.json"
#: column order and headers
COLUMNS = {
    "taskq": "taskq (PostgreSQL)",
    "taskq-redis": "taskq (Redis)",
    "procrastinate": "procrastinate",
    "pgqueuer": "PgQueuer",
}
PEERS = ["procrastinate", "pgqueuer"]
#: what each measure's N is in the sizes of a run
SIZE_KEY = {
    "enqueue_one_per_s": "enqueue_one",
    "enqueue_bulk_per_s": "enqueue_bulk",
    "processing_per_s": "processing",
    "latency_p50_ms": "latency",
    "latency_p99_ms": "latency",
}
#: the goal: taskq's PostgreSQL pick-up latency at most this many times its Redis one
GOAL = 2.0


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "tasks/s":
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def metric(results: dict[str, Any], lib: str, key: str) -> float | None:
    value = results.get(lib, {}).get("metrics", {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def render(data: dict[str, Any]) -> str:
    results: dict[str, Any] = data.get("results", {})
    libs = [lib for lib in COLUMNS if lib in results]
    base = "taskq" if "taskq" in results else ("taskq-redis" if "taskq-redis" in results else None)
    peers = [p for p in PEERS if p in results]
    mode = data.get("mode", "?")
    sizes = SIZES.get(mode, {})
    head = ["measure", *(COLUMNS[lib] for lib in libs)]
    if base is not None:
        head += [f"{COLUMNS[base]} / {COLUMNS[p]}" for p in peers]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for key, label, unit, _ in METRICS:
        n = sizes.get(SIZE_KEY.get(key, ""))
        what = f"{label}, {unit}" + (f" (N={n:,})" if n else "")
        row = [what, *(fmt(metric(results, lib, key), unit) for lib in libs)]
        if base is not None:
            row += [ratio(metric(results, base, key), metric(results, p, key)) for p in peers]
        lines.append("| " + " | ".join(row) + " |")
    out = [
        f"PostgreSQL benchmark, {mode} run of {data.get('ran_at', '?')} "
        f"({data.get('runs', 1)} interleaved run(s), medians), "
        f"{data.get('machine', {}).get('cores', '?')} cores; "
        f"PostgreSQL {_first(results, 'postgres') or '?'}.",
        _conditions(results),
        "",
        *lines,
        "",
        "Ratios are taskq / peer: above 1 taskq enqueues or processes more per second; for "
        "the latencies (ms) below 1 taskq is quicker.",
    ]
    if "taskq" in results and "taskq-redis" in results:
        rows = []
        for key in ("latency_p50_ms", "latency_p99_ms", "idle_first_ms"):
            pg, rd = metric(results, "taskq", key), metric(results, "taskq-redis", key)
            met = "met" if pg is not None and rd and pg / rd <= GOAL else "not met"
            rows.append(f"{key} {ratio(pg, rd)} ({met})")
        out += [
            "",
            f"Goal, PostgreSQL pick-up latency within {GOAL:g}× of Redis: " + "; ".join(rows),
        ]
    elif "taskq" not in results:
        why = data.get("skipped", {}).get("taskq") or data.get("failed", {}).get("taskq")
        out += ["", f"taskq on PostgreSQL: not measured ({_text(why) or 'not in this run'})."]
    out += ["", "Settings (each peer's best documented ones for short tasks):", ""]
    for lib in libs:
        r = results[lib]
        versions = ", ".join(f"{k} {v}" for k, v in r.get("versions", {}).items())
        revision = f", revision {r['revision']}" if r.get("revision") else ""
        out.append(f"- **{COLUMNS[lib]}** ({versions}{revision}):")
        for what, setting in r.get("settings", {}).items():
            out.append(f"  - {what}: `{setting}`")
        for what, url in r.get("docs", {}).items():
            out.append(f"  - {what}: {url}")
        if r.get("errors"):
            out.append(f"  - measures that failed: {r['errors']}")
    for lib, why in {**data.get("skipped", {}), **data.get("failed", {})}.items():
        if lib not in results and lib != "taskq":
            out.append(f"- {lib}: not measured ({_text(why)})")
    return "\n".join(out) + "\n"


def _conditions(results: dict[str, Any]) -> str:
    """The server's commit settings and how busy the machine was (1-minute load average
    before each library's runs): the numbers are this machine's, at that moment."""
    settings = _first(results, "postgres_settings") or {}
    loads = [run["load_before"] for r in results.values() for run in r.get("runs", [])]
    parts = [f"{k} {v}" for k, v in settings.items() if k in ("fsync", "synchronous_commit")]
    if loads:
        parts.append(f"load average before each run {min(loads):.1f} to {max(loads):.1f}")
    return ("Conditions: " + ", ".join(parts) + ".") if parts else ""


def _first(results: dict[str, Any], key: str) -> Any:
    return next((r.get(key) for r in results.values() if r.get(key)), None)


def _text(why: Any) -> str:
    if isinstance(why, dict):
        return str(why.get("failed", why))
    return str(why or "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", nargs="?", type=Path, default=DEFAULT)
    args = ap.parse_args()
    sys.stdout.write(render(json.loads(args.path.read_text())))


if __name__ == "__main__":
    main()
