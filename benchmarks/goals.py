"""The goals of issue 22 (point 5), per worker process, judged on a full run's medians
(``results/latest.json``) and on the cost curves (``results/curves.json``): each met or not
met with its measurement; each unmet one gets a profile of where the time (or the memory)
goes.

``run.py`` judges them with issue 7's targets (``report.targets`` appends them); for a run
made before they existed, or to take the profiles of the unmet ones again::

    python -m benchmarks.goals            # judge latest.json, profile, rewrite the doc

The goals: processing at least 15x the fastest async peer and 8x the fastest sync peer (each
peer at its better settings, default or tuned); async enqueue at least 0.9x the redis-py
round-trip floor; pick-up p99 at 200 tasks/s at most the best peer's, and at 2,000 tasks/s
at most 2 ms (one worker process: the processes curve); worker RSS at rest at most 40 MiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
FLOOR = "redis-py"
RSS_GOAL_MIB = 40.0
P99_AT_2000_MS = 2.0


def _median(data: dict[str, Any], lib: str, key: str) -> float | None:
    m = data["metrics"].get(lib, {}).get(key)
    value = None if m is None else m.get("median")
    return None if value is None else float(value)


def _label(lib: str) -> str:
    name, _, variant = lib.partition(":")
    return f"{name} ({variant})" if variant else name


def current_curves() -> dict[str, Any] | None:
    path = RESULTS / "curves.json"
    if not path.exists():
        return None
    found: dict[str, Any] = json.loads(path.read_text())
    return None if found.get("quick") else found


def goals(data: dict[str, Any], curves: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Issue 22's goals as ``report.targets`` entries (``"issue": 22``); ``met`` None
    where this run did not measure what a goal needs."""
    out: list[dict[str, Any]] = []
    peers = [lib for lib in data["metrics"] if lib not in ("taskq", FLOOR)]

    def add(name: str, target: str, value: str, met: bool | None, detail: str = "") -> None:
        out.append(
            {"name": name, "target": target, "value": value, "met": met, "detail": detail,
             "issue": 22}
        )  # fmt: skip

    for kind, factor in (("async", 15), ("sync", 8)):
        key = f"throughput_{kind}"
        tq = _median(data, "taskq", key)
        rivals = {lib: v for lib in peers if (v := _median(data, lib, key))}
        target = f"processing, no-op {kind} tasks ≥ {factor}× the fastest {kind} peer"
        if tq and rivals:
            best = max(rivals, key=rivals.__getitem__)
            add(
                f"goal_{key}",
                target,
                f"{tq / rivals[best]:.1f}× ({tq:,.0f}/s vs {_label(best)} {rivals[best]:,.0f}/s)",
                tq >= factor * rivals[best],
                "one worker process each; every peer at its default and tuned settings",
            )
        else:
            add(f"goal_{key}", target, "not measured", None)
    tq, floor = (
        _median(data, "taskq", "enqueue_async"),
        _median(data, "taskq", "enqueue_floor_async"),
    )
    target = "async enqueue ≥ 0.9× the redis-py round-trip floor"
    if tq and floor:
        add(
            "goal_enqueue_async_floor",
            target,
            f"{tq / floor:.2f}× ({tq:,.0f} vs {floor:,.0f}/s)",
            tq / floor >= 0.9,
            "redis-py's RPUSH (asyncio) in the same process, interleaved; the time of an "
            "enqueue is split under 'Where the time goes'",
        )
    else:
        add("goal_enqueue_async_floor", target, "not measured", None)
    p99 = {lib: v for lib in peers if (v := _median(data, lib, "latency_p99_ms"))}
    tq = _median(data, "taskq", "latency_p99_ms")
    target = "pick-up latency p99 at 200 tasks/s ≤ the best peer's"
    if tq and p99:
        best = min(p99, key=p99.__getitem__)
        add(
            "goal_latency_p99",
            target,
            f"taskq {tq:.2f} ms; best peer {_label(best)} {p99[best]:.2f} ms",
            tq <= p99[best],
        )
    else:
        add("goal_latency_p99", target, "not measured", None)
    target = f"pick-up latency p99 at 2,000 tasks/s ≤ {P99_AT_2000_MS:g} ms (one process)"
    point = _one_process(curves)
    if point is not None and "p99_ms_at_2000" in point:
        v = float(point["p99_ms_at_2000"])
        sent = point.get("achieved_per_s_at_2000")
        add(
            "goal_latency_p99_2000",
            target,
            f"{v:.2f} ms (p50 {point.get('p50_ms_at_2000', float('nan')):.2f} ms)",
            v <= P99_AT_2000_MS,
            "the cost curves' processes curve (benchmarks/curves.py), one worker process, a "
            f"paced producer on the same 2 cores (sent {sent:,}/s)"
            if sent
            else "the cost curves' processes curve (benchmarks/curves.py)",
        )
    else:
        add("goal_latency_p99_2000", target, "not measured (run benchmarks/curves.py)", None)
    rss = _median(data, "taskq", "rss_rest_mib")
    target = f"worker RSS at rest ≤ {RSS_GOAL_MIB:g} MiB"
    if rss:
        add("goal_rss_rest", target, f"{rss:.0f} MiB", rss <= RSS_GOAL_MIB)
    else:
        add("goal_rss_rest", target, "not measured", None)
    return out


def _one_process(curves: dict[str, Any] | None) -> dict[str, Any] | None:
    if curves is None:
        return None
    points = curves.get("curves", {}).get("processes", {}).get("points", [])
    return next((p for p in points if p.get("processes") == 1), None)


#: what an idle worker imports (``taskq worker`` at rest), measured in a fresh interpreter
_RSS_PROBE = """
import json, re, sys, tracemalloc
import psutil
tracemalloc.start(1)
base = psutil.Process().memory_info().rss
from taskq_core import TaskQueue
import taskq_core.worker, taskq_core.cli
app = TaskQueue(sys.argv[1], key_prefix="bench-rss-probe")
app.broker.ping()
w = app.worker(handle_signals=False)
snap = tracemalloc.take_snapshot()
by: dict = {}
lib = re.compile(r"/lib/python3\\.\\d+/")
for stat in snap.statistics("filename"):
    path = stat.traceback[0].filename
    if "site-packages/" in path:
        key = path.split("site-packages/", 1)[1].split("/")[0].removesuffix(".py")
    elif "/taskq_core/" in path:
        key = "taskq_core"
    elif lib.search(path):
        key = "standard library"
    else:
        key = "other"
    by[key] = by.get(key, 0) + stat.size
rss = psutil.Process().memory_info().rss
print(json.dumps({"rss_mib": rss / 2**20, "interpreter_mib": base / 2**20,
                  "python_heap_mib": sum(by.values()) / 2**20, "modules": len(sys.modules),
                  "by_package_mib": {k: v / 2**20 for k, v in sorted(by.items(),
                  key=lambda kv: -kv[1])[:12]}}))
app.close()
"""


def rss_profile(url: str) -> dict[str, Any]:
    """Where an idle worker's memory goes: its RSS after the imports and set-up a worker
    does before its first task, and the Python allocations made meanwhile by package
    (tracemalloc, by the file that allocated; C extensions' own memory is in the RSS only)."""
    python = ROOT / ".venv" / "bin" / "python"
    done = subprocess.run(
        [str(python if python.exists() else sys.executable), "-c", _RSS_PROBE, url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def judge(
    data: dict[str, Any], base: str, side: Callable[..., dict[str, Any]] | None
) -> dict[str, Any]:
    """Replace the goals in ``data["targets"]``, and take the profiles of the unmet ones
    that ``data`` lacks (``side``: run.py's, or None for no new throughput profiles)."""
    data["targets"] = [t for t in data.get("targets", []) if t.get("issue") != 22]
    data["targets"] += goals(data, current_curves())
    profiles_now: dict[str, Any] = dict(data.get("profiles") or {})
    unmet = {t["name"] for t in data["targets"] if t["met"] is False}
    if side is not None:
        from benchmarks import profiles

        # profiles.py takes a goal's profile as that of the issue 7 target it tightens
        missing = {g for g in unmet if g.removeprefix("goal_") not in profiles_now}
        if missing:
            view = {**data, "targets": [{"name": n, "met": False} for n in missing]}
            for name, prof in profiles.run_profiles(view, base, side).items():
                profiles_now[name] = prof
    if "goal_rss_rest" in unmet:
        try:
            profiles_now["rss_rest"] = {"why": ["goal_rss_rest"], **rss_profile(base)}
        except (subprocess.SubprocessError, ValueError) as exc:
            profiles_now["rss_rest"] = {"why": ["goal_rss_rest"], "error": str(exc)[-1500:]}
    data["profiles"] = profiles_now
    return data


def main() -> int:
    from benchmarks import report, run

    src = Path(sys.argv[1]) if len(sys.argv) > 1 else RESULTS / "latest.json"
    data = json.loads(src.read_text())
    base = "redis://127.0.0.1:6379"  # run.py's default
    judge(data, base, run.side)
    src.write_text(json.dumps(data, indent=1) + "\n")
    chart = ROOT / "docs" / "benchmarks-ratios.png"
    report.write_doc(data, ROOT / "docs" / "benchmarks.md", chart if chart.exists() else None)
    for t in data["targets"]:
        if t.get("issue") == 22:
            print(f"{'met' if t['met'] else 'NOT met' if t['met'] is False else 'n/a':8} "
                  f"{t['target']}: {t['value']}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
