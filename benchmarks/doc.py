"""Renders ``docs/benchmarks.md`` from a results file (see ``report.write_doc``).

Everything with a number in it comes from the results; the prose around it describes the
method, which the harness in ``benchmarks/`` implements.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.report import (
    FLOOR,
    FLOOR_METRICS,
    METRICS,
    TASKQ_ONLY,
    TUNED_NOTES,
    backlogged,
    base_lib,
    best_of,
    cell,
    fmt,
    lib_variant,
    tuned_notes,
)

NAMES = {
    "taskq": "taskq",
    "celery": "Celery",
    "rq": "RQ",
    "dramatiq": "Dramatiq",
    "huey": "Huey",
    "arq": "arq",
    "saq": "SAQ",
    "taskiq": "taskiq",
}


#: the metrics a peer's tuned settings leave as they are: the producer is the default one,
#: and the tasks queued in Redis are the same
PRODUCER_KEYS = {m.key for m in METRICS if m.key.startswith("enqueue_")} | {"redis_bytes_per_task"}


def _name(lib: str) -> str:
    """``Celery`` for ``celery``, ``Celery tuned`` for ``celery:tuned``."""
    name = NAMES.get(base_lib(lib), lib)
    return name if lib_variant(lib) == "default" else f"{name} {lib_variant(lib)}"


def _columns(libs: list[str]) -> list[str]:
    """The results' columns: taskq, then each peer with its defaults and tuned."""
    return [col for lib in libs for col in ([lib] if lib == "taskq" else [lib, f"{lib}:tuned"])]


def _span(values: list[Any], spec: str) -> str:
    """``a–b``, or ``a`` when every value is the same."""
    lo, hi = format(min(values), spec), format(max(values), spec)
    return lo if lo == hi else f"{lo}–{hi}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _machine(data: dict[str, Any]) -> str:
    m, load = data["machine"], data.get("load", {})
    rows = [
        ["date", data["date"]],
        ["duration of the run", f"{data['duration_s'] / 60:.1f} min"],
        ["CPU", f"{m['cpu']}, {m['cores']} cores"],
        ["memory", f"{m['memory_gib']} GiB"],
        ["OS", m["os"]],
        ["Python", m["python"] + " (both environments)"],
        ["Redis", f"{m['redis']} on {m['redis_url']} (loopback, TCP), {m['redis_persistence']}"],
    ]
    for lib, v in data["versions"].items():
        if lib == "floor":
            continue
        pkgs = ", ".join(
            f"{k} {val}"
            for k, val in v.items()
            if k
            not in (
                "python",
                "lease_seconds",
                "renew_seconds",
                "concurrency",
                "middleware",
                "monitoring",
            )
        )
        rows.append([f"{NAMES.get(lib, lib)} environment", pkgs])
    if load.get("samples"):
        mean, peak = load["other_processes_cpu_cores_mean"], load["other_processes_cpu_cores_max"]
        if mean > 0.05 or peak > 0.25:
            shared = (
                f"**yes**{'' if mean > 0.05 else ', at times'}: other processes (other "
                f"engineers' test runs) used {mean:.2f} of the {m['cores']} cores on average, "
                f"{peak:.2f} at the peak (5 s samples); load average median "
                f"{load['loadavg_1m_median']:.2f}, max {load['loadavg_1m_max']:.2f}"
            )
        else:
            shared = (
                f"no: other processes used {mean:.2f} cores on average, {peak:.2f} at the "
                f"peak (load average median {load['loadavg_1m_median']:.2f})"
            )
        rows.append(["machine shared during the run", shared])
        if "steal_mean" in load:
            rows.append(
                [
                    "CPU time taken by the host (steal)",
                    f"{load['steal_mean'] * 100:.1f}% on average, {load['steal_p90'] * 100:.1f}% "
                    f"in the worst tenth of 5 s samples, {load['steal_max'] * 100:.1f}% at the "
                    "peak (`/proc/stat`): while stolen, every process here runs slower",
                ]
            )
    return _table(["", ""], rows)


def _result_cell(data: dict[str, Any], col: str, m: Any) -> str:
    """One cell of the results: a tuned column's producer rows read "same" (its settings
    are the worker's), and a backlogged worker's latencies are marked ‡."""
    if lib_variant(col) != "default" and m.key in PRODUCER_KEYS:
        measured = col in data["metrics"] and cell(data, base_lib(col), m) != "—"
        return "same" if measured else "—"
    text = cell(data, col, m)
    if text != "—" and m.key.startswith("latency_p") and backlogged(data, col):
        text += " ‡"
    return text


def _results(data: dict[str, Any], libs: list[str]) -> str:
    cols = _columns(libs)
    header = ["metric", *[f"**{_name(c)}**" if c == "taskq" else _name(c) for c in cols]]
    rows = []
    for m in METRICS:
        row = [f"{m.label} ({m.unit})"] + [_result_cell(data, c, m) for c in cols]
        if any(c != "—" for c in row[1:]):
            rows.append(row)
    return _table(header, rows)


def _ratios(data: dict[str, Any], libs: list[str]) -> str:
    peers = [lib for lib in libs if lib != "taskq"]
    header = ["metric", "better", *[NAMES[p] for p in peers]]
    rows = []
    for m in METRICS:
        vals = [data["ratios"].get(p, {}).get(m.key) for p in peers]
        if all(v is None for v in vals):
            continue
        better = "higher" if m.higher_is_better else "lower"
        cells = []
        for p, v in zip(peers, vals, strict=True):
            best = best_of(data, p, m.key)
            tuned = best is not None and lib_variant(best[0]) != "default"
            cells.append("—" if v is None else f"{v:.3g}×" + (" (tuned)" if tuned else ""))
        rows.append([m.label, better, *cells])
    return _table(header, rows)


def _targets(data: dict[str, Any]) -> str:
    parts = []
    for issue, head in ((7, "target (issue 7)"), (22, "goal (issue 22, point 5)")):
        chosen = [t for t in data["targets"] if t.get("issue", 7) == issue]
        if not chosen:
            continue
        rows = []
        for t in chosen:
            mark = {True: "✅ met", False: "❌ **not met**", None: "n/a"}[t["met"]]
            rows.append([t["target"], t["value"], mark])
        notes = [f"- {t['target']}: {t['detail']}." for t in chosen if t.get("detail")]
        parts.append(
            _table([head, "this run", ""], rows) + ("\n\n" + "\n".join(notes) if notes else "")
        )
    if not any(t.get("issue") == 22 for t in data["targets"]):
        parts.append("Issue 22's goals were not judged on this run (`python -m benchmarks.goals`).")
    return "\n\n".join(parts)


def _rss_profile(p: dict[str, Any]) -> str:
    rows = [[k, f"{v:.1f}"] for k, v in p["by_package_mib"].items()]
    return (
        f"An idle worker's set-up (`taskq_core`, the worker and the CLI imported, an app and "
        f"its broker connected, a Worker made) in a fresh interpreter: RSS {p['rss_mib']:.1f} "
        f"MiB, of which {p['interpreter_mib']:.1f} MiB before any import; "
        f"{p['python_heap_mib']:.1f} MiB of Python allocations made meanwhile "
        f"(tracemalloc), {p['modules']} modules loaded. The largest, by the package of the "
        "file that allocated (C extensions' own memory shows in the RSS only):\n\n"
        + _table(["package", "MiB"], rows)
        + "\n"
    )


SEGMENTS = {
    "call": "enqueue call → Redis receives the enqueue script (producer side, one send)",
    "wake": "→ Redis runs the worker's fetch (the enqueue script; its wake-up token ends an "
    "idle worker's BLPOP and the fetch sent behind it runs at once; a busy worker sends "
    "its next fetch itself)",
    "deliver": "→ the task starts (fetch script, reply, decode, the task scheduled on the loop)",
    "total": "enqueue call → task start",
}


def _segments(p: dict[str, Any]) -> list[list[str]]:
    return [
        [SEGMENTS[k], f"{v['p50']:.3f}", f"{v['p95']:.3f}", f"{v['max']:.3f}"]
        for k, v in p["segments"].items()
    ]


def _decomposition(data: dict[str, Any]) -> str:
    """The time of one enqueue split into Redis's part and the Python around it, from the
    medians of the floor, the prebuilt enqueue script and taskq's enqueue."""

    def us(lib: str, key: str) -> float | None:
        e = data["metrics"].get(lib, {}).get(key)
        return None if not e or not e.get("median") else 1e6 / e["median"]

    def stage(key: str) -> float | None:
        e = data["metrics"].get("taskq", {}).get(key)
        return None if not e else float(e["median"])

    out = []
    for title, kind, floor_kind in (
        ("one enqueue, sync producer", "sync", "sync"),
        ("one enqueue, async producer", "async", "async"),
        ("one task of a bulk enqueue (100 a call)", "bulk", "pipeline"),
    ):
        f = us("taskq", f"decomp_rpush_{floor_kind}")
        lp = us("taskq", f"decomp_leanpush_{floor_kind}")
        sc = us("taskq", f"decomp_script_{kind}")
        tq = us("taskq", f"decomp_enqueue_{kind}")
        if f is None or sc is None or tq is None:
            continue
        rows = [["RPUSH of a message-sized payload, with redis-py (the floor)", f"{f:.1f}", ""]]
        base = f
        if lp is not None:
            rows.append(
                [
                    "the same RPUSH sent taskq's lean way (hiredis-packed, on a pooled connection)",
                    f"{lp:.1f}",
                    f"{lp - f:+.1f} µs: redis-py's client around the command",
                ]
            )
            base = lp
        rows += [
            [
                "taskq's enqueue script alone, the command built beforehand, sent the lean way",
                f"{sc:.1f}",
                f"{sc - base:+.1f} µs: the script's cost beyond an RPUSH (Redis running it, "
                "and packing its longer command)",
            ],
            [
                "taskq's enqueue",
                f"{tq:.1f}",
                f"{tq - sc:+.1f} µs: the Python around the call",
            ],
        ]
        items, plan = stage(f"stage_items_{kind}"), stage(f"stage_plan_{kind}")
        if items is not None and plan is not None:
            rows += [
                [
                    "… of which `TaskQueue._items` (checks, id, message, orjson)",
                    "",
                    f"{items:.1f} µs",
                ],
                [
                    "… of which `Plans.enqueue` + `ScriptCall.packed` (the script call)",
                    "",
                    f"{plan:.1f} µs",
                ],
                [
                    "… the rest (`enqueue_many`, `RedisBroker.run`, handles)",
                    "",
                    f"{tq - sc - items - plan:.1f} µs",
                ],
            ]
        out.append(_table([f"µs per {title}", "µs", "difference"], rows))
    if not out:
        return ""
    return (
        "One enqueue taken apart by measurement rather than by sampling (a sampler that "
        "stops the process lands on the lines next to system calls far more often than "
        "the time they take): the parts are timed with taskq's own redis-py clients and "
        "connections in the same process, in interleaved blocks, medians over blocks and "
        "runs. Only the "
        "two stages marked CPU-only are timed alone (`_items` is private: a change there "
        "shows up here).\n\n" + "\n\n".join(out) + "\n"
    )


def _profiles(data: dict[str, Any]) -> str:
    profs = data.get("profiles") or {}
    failed = [t["name"] for t in data["targets"] if t["met"] is False]
    if not failed:
        return "Every target was met: no profile was needed.\n"
    parts = []
    if any(name.startswith(("enqueue", "bulk", "goal_enqueue")) for name in failed):
        parts.append(_decomposition(data))
    if "skipped" in profs:
        parts.append(f"Profiles skipped: {profs['skipped']}.\n")
        return "\n".join(parts)
    if profs:
        parts.append(
            "py-spy profiles of a taskq worker, taken after the run for each processing or "
            "metrics target not met (`benchmarks/profiles.py`), and a trace of the pick-up "
            "path. The µs column splits the run's median time per task by each share.\n"
        )
    for name, p in profs.items():
        parts.append(f"### {name.replace('_', ' ')} (for: {', '.join(p['why'])})\n")
        if "error" in p:
            parts.append(f"The profile failed: `{p['error'].strip().splitlines()[-1]}`\n")
            continue
        if "by_package_mib" in p:
            parts.append(_rss_profile(p))
            continue
        if "segments" in p:
            parts.append(f"Traced: {p['what']}; {p['traced']} of {p['sent']} tasks lined up.\n")
            parts.append(_table(["segment", "p50 ms", "p95 ms", "max ms"], _segments(p)) + "\n")
            continue
        parts.append(f"Sampled: {p['what']}; {p['samples']:,} samples.\n")
        unit = "task"

        def rows(items: list[list[Any]]) -> list[list[str]]:
            return [[f"`{k}`", f"{pct}", f"{us}"] for k, pct, us in items]

        parts.append(f"By package of the innermost frame ({p['us_per_op']} µs per {unit}):\n")
        parts.append(_table(["package", "%", f"µs per {unit}"], rows(p["by_package"])) + "\n")
        parts.append("Functions with the most samples of their own (self time):\n")
        parts.append(_table(["function (file)", "% self", "µs"], rows(p["top_self"])) + "\n")
        parts.append("taskq_core functions with the most samples in total (with what they call):\n")
        parts.append(
            _table(["function (file)", "% total", "µs"], rows(p["top_total_taskq_core"])) + "\n"
        )
    return "\n".join(parts)


def _tuned(data: dict[str, Any], lib: str) -> dict[str, Any] | None:
    """A peer's tuned settings: as the run recorded them, or (a results file from before
    the tuned variants) as the harness defines them now."""
    found: dict[str, Any] | None = data["libraries"][lib].get("tuned")
    if found is None and lib in TUNED_NOTES:
        found = tuned_notes(lib, data["machine"].get("cores") or 1)
    return found


def _setup(data: dict[str, Any], libs: list[str]) -> str:
    rows = []
    sources = []
    for lib in libs:
        n = data["libraries"][lib]
        rows.append(
            [
                NAMES[lib],
                n["worker"],
                n["sync_producer"] or "— (none)",
                n["async_producer"] or "— (none)",
                n["bulk"] or "— (none)",
            ]
        )
        tuned = _tuned(data, lib)
        if tuned is None:
            continue
        measured = f"{lib}:tuned" in data["metrics"]
        rows.append(
            [
                _name(f"{lib}:tuned"),
                tuned["worker"] + ("" if measured else " (not measured in this run)"),
                "same as default",
                "same as default",
                "same as default",
            ]
        )
        sources.append(
            f"- **{_name(f'{lib}:tuned')}**"
            + ("" if measured else " (not measured in this run)")
            + ": "
            + "; ".join(f"{x['setting']} ([source]({x['source']}))" for x in tuned["settings"])
            + "."
        )
    table = _table(
        ["library", "worker (one process each)", "sync producer", "async producer", "bulk"], rows
    )
    if not sources:
        return table
    return (
        table + "\n\nEach peer runs twice: with its defaults, and tuned, with the settings its "
        "own documentation gives for many short tasks (throughput and pick-up latency), each "
        "cited below. The tuned settings are the worker's: the producers are the defaults', "
        "and the recovery test runs the defaults only.\n\n" + "\n".join(sources)
    )


def _recovery_notes(data: dict[str, Any], libs: list[str]) -> str:
    """Each library's recovery: what was measured, with which setting of its own recovery
    feature, what the feature does, and where it is documented."""
    lines = []
    k = data["sizes"]["recovery"]["k"]
    for lib in libs:
        rec = data["metrics"].get(lib, {}).get("recovery_s")
        notes = data["libraries"].get(lib, {})
        note, docs = notes.get("recovery"), notes.get("recovery_docs") or []
        if rec is None:
            continue
        note = note[:1].upper() + note[1:] if note else ""
        setting = rec.get("setting")
        how = f" Setting: {setting}." if setting else ""
        cite = f" Documented: {', '.join(f'<{u}>' for u in docs)}." if docs else ""
        detail = data["metrics"][lib].get("_extra", {}).get("recovery_detail", [{}])[0]
        done = len(detail.get("finished_within_bound", []))
        nudge = ""
        if "after_next_enqueue_s" in detail:
            later = detail["after_next_enqueue_s"]
            nudge = (
                f" One more task enqueued after that: the held tasks then ran within "
                f"{later:.1f} s of it."
                if later is not None
                else " One more task enqueued after that did not bring them back either (15 s)."
            )
        if rec.get("lost"):
            lines.append(
                f"- **{NAMES[lib]}**: the task is lost: none of the {k} tasks the killed "
                f"worker held ran again within {rec['bound_s']:.0f} s, and Redis held no "
                f"copy of them (no key left in its database).{nudge} {note or ''}{cite}"
            )
        elif rec.get("not_recovered"):
            left = detail.get("keys_left") or {}
            shown = ", ".join(f"`{key}` ({v})" for key, v in list(left.items())[:3])
            kept = (
                f"; Redis still held {len(left)} key(s) of it: {shown}"
                + (", ..." if len(left) > 3 else "")
                if left
                else ""
            )
            lines.append(
                f"- **{NAMES[lib]}**: not recovered within {rec['bound_s']:.0f} s ({done} of "
                f"{k} tasks finished{kept}).{nudge}{how} {note or ''}{cite}"
            )
        else:
            lines.append(
                f"- **{NAMES[lib]}**: every task finished elsewhere after "
                f"{fmt(rec['median'], 's')} s (median of {len(rec['runs'])}; "
                f"runs: {', '.join(fmt(r, 's') for r in rec['runs'])}).{how}"
                + (f" {note}" if note and lib != "taskq" else "")
                + cite
            )
    return "\n".join(lines)


def _memory_notes(data: dict[str, Any], libs: list[str]) -> str:
    """Redis memory per queued task: each library's figure and how it was enqueued."""
    rows = []
    for lib in libs:
        m = data["metrics"].get(lib, {})
        x = m.get("_extra", {}).get("memory")
        if "redis_bytes_per_task" not in m or not x:
            continue
        how = {"bulk": "bulk API, batches of 1,000", "sync": "one call each"}.get(
            x.get("how") or "", "one call each, 100 in flight (asyncio)"
        )
        rows.append(
            [
                NAMES[lib],
                fmt(m["redis_bytes_per_task"]["median"], "rate"),
                fmt(x.get("keys_bytes_per_task"), "rate"),
                f"{x.get('keys', 0):,}",
                how,
            ]
        )
    if not rows:
        return "Not measured in this run."
    return _table(
        [
            "library",
            "bytes per task (`used_memory`)",
            "bytes per task (`MEMORY USAGE` of its keys)",
            "keys",
            "enqueued with",
        ],
        rows,
    )


def _footnotes(data: dict[str, Any], libs: list[str]) -> str:
    lines = []
    unmeasured = [_name(c) for c in _columns(libs) if c not in data["metrics"]]
    if unmeasured:
        lines.append(f"- {', '.join(unmeasured)}: not measured in this run (dashes).")
    for lib in _columns(libs):
        x = data["metrics"].get(lib, {}).get("_extra", {})
        why = backlogged(data, lib)
        if why:
            lines.append(
                f"- ‡ {_name(lib)}: {why}; its pick-up latencies at 200/s are mostly the wait "
                "in a growing queue, not the time to pick a task up."
            )
        for key in ("throughput_sync", "throughput_async"):
            if x.get(f"{key}_capped_s"):
                done = [d for d in x.get(f"{key}_done", []) if d]
                lines.append(
                    f"- † {_name(lib)}: processing was stopped {x[f'{key}_capped_s']} s after "
                    "the first task started, to keep the run within its time budget; the rate "
                    f"is over the {_span(done, ',')} tasks done by then."
                )
        rates = [r for r in x.get("latency_achieved_rate", []) if r]
        if rates and min(rates) < 190:
            lines.append(
                f"- {_name(lib)}: the producer reached only {_span(rates, '.0f')} of the 200 "
                "enqueues/s asked for in the latency test (producer, worker and Redis share "
                "the 2 cores); its latencies include the queue that built up."
            )
        if x.get("latency_complete") and not all(x["latency_complete"]):
            lines.append(
                f"- {_name(lib)}: some latency tasks were not picked up within 60 s; "
                "the percentiles cover those that were."
            )
        if x.get("recovery_error"):
            lines.append(
                f"- {_name(lib)}: the recovery test failed: "
                f"`{x['recovery_error'].strip().splitlines()[-1][:200]}`"
            )
    for s in data.get("skipped", []):
        lines.append(f"- skipped {s}")
    for e in data.get("errors", []):
        lines.append(f"- a measurement failed: `{e.strip().splitlines()[0][:200]}`")
    return "\n".join(lines)


def _flow() -> str:
    """Flow control (docs/flow-control.md): ``benchmarks/flow.py``'s last run and the
    before/after of a task without options (``benchmarks/ab.py``), from their own results."""
    results = Path(__file__).resolve().parent / "results"
    flow_file, ab_file = results / "flow.json", results / "ab-flow-control.json"
    if not flow_file.exists():
        return "No run of `benchmarks/flow.py` yet."
    f = json.loads(flow_file.read_text())
    rate, cap, hand = f["rate"], f["cap"], f["handover"]
    rows = [
        ["rate limit", f"{f['rate_limit']}/s, 3 worker processes, counted over {f['seconds']:g} s"],
        ["achieved", f"{rate['achieved_per_s']}/s ({rate['error_pct']:+.2f} %)"],
        ["most starts in any 1 s", str(rate["most_in_1s"])],
        [
            "worker CPU while throttled",
            f"{rate['workers_cpu_pct_of_one_core']} % of one core for the 3 processes, "
            f"{rate['cpu_ms_per_task']} ms per task run (each task writes 3 probes to Redis)",
        ],
        ["concurrency cap", f"{f['cap_limit']}: most at once {cap['most_at_once']} of "
                            f"{cap['tasks']} tasks (3 processes x 8 slots)"],
        ["slot hand-over after SIGKILL",
         f"{hand['seconds_after_kill']} s (lease {f['lease']:g} s); tasks started while the "
         f"slot was held: {hand['started_while_held']}"],
    ]  # fmt: skip
    text = _table(["", ""], rows)
    if ab_file.exists():
        ab = json.loads(ab_file.read_text())
        lines = []
        for variant, r in ab.get("variants", {}).items():
            spread = f"{r['pair_ratio_min']:.3f}–{r['pair_ratio_max']:.3f}"
            lines.append(
                [
                    variant,
                    f"{r['median_a']:,.0f}",
                    f"{r['median_b']:,.0f}",
                    f"{r['ratio_b_over_a']:.3f} (pairs {spread})",
                ]
            )
        if lines:
            text += (
                "\n\nA task without any flow-control option, before and after flow control "
                f"(`benchmarks/ab.py`, {ab.get('a', 'before')} against {ab.get('b', 'after')}, "
                "interleaved):\n\n"
                + _table(["variant", "before, tasks/s", "after, tasks/s", "after / before"], lines)
            )
    return (
        text + "\n\n`python benchmarks/flow.py` (about 50 s; `--quick` is CI's smoke run, "
        "`tests/benchmarks/test_flow_quick.py`); `python benchmarks/ab.py --a REV` for the "
        "before/after. What the figures mean: [flow control](flow-control.md)."
    )


def _workflows() -> str:
    """Workflows (docs/workflows.md): ``benchmarks/workflows.py``'s last run, taskq and
    Celery's canvas side by side on the same Redis."""
    found = Path(__file__).resolve().parent / "results" / "workflows.json"
    if not found.exists():
        return "No run of `benchmarks/workflows.py` yet."
    w = json.loads(found.read_text())
    t, c = w["taskq"], w.get("celery") or {}

    def secs(d: Any, *path: str) -> float | None:
        for p in path:
            d = d.get(p) if isinstance(d, dict) else None
        return float(d) if isinstance(d, (int, float)) else None

    rows = []
    for label, path in (
        (f"chord of {t['chord']['n']:,} no-ops, to the callback's result", ("chord", "seconds")),
        (f"chain of {t['chain']['n']:,} steps, to the last result", ("chain", "seconds")),
        (f"group of {t['group']['n']:,}: enqueue", ("group", "enqueue_seconds")),
        (f"group of {t['group']['n']:,}: to the last member", ("group", "complete_seconds")),
    ):
        a, b = secs(t, *path), secs(c, *path)
        rows.append(
            [
                label,
                f"{a:.3f} s" if a is not None else "—",
                f"{b:.3f} s" if b is not None else "—",
                f"{b / a:.1f}×" if a and b else "—",
            ]
        )
    text = _table(["", "taskq", f"Celery {c.get('version', '')}".strip(), "taskq faster by"], rows)
    cost = t["step_cost_us"]
    text += (
        f"\n\nThe cost of a step over a plain task: {cost['group_member']} µs per member of the "
        f"group against {cost['plain_task']} µs per plain no-op task enqueued in bulk, "
        f"{cost['added']} µs more, beside one Redis round trip from Python here "
        f"({cost['redis_round_trip']} µs, PING)."
    )
    notes = c.get("notes") or []
    if c.get("error"):
        notes = [f"Celery's run failed: {c['error'].strip().splitlines()[-1][:200]}"]
    for note in notes:
        text += f"\n\n- {note}"
    return (
        text + f"\n\nMedians of the runs (measured {w.get('at', '')}). taskq: {t['worker']}. "
        "Celery: "
        + ", ".join(f"{k} {v}" for k, v in (c.get("settings") or {}).items())
        + " (its best documented settings for short tasks; see `benchmarks/workflows_celery.py`, "
        "where each is cited). Times run from before the enqueue to the last task's result. "
        "`python benchmarks/workflows.py` (about 3 minutes); `--quick` is CI's smoke run "
        "(`tests/benchmarks/test_workflows_quick.py`). What the figures mean: "
        "[workflows](workflows.md)."
    )


def render(data: dict[str, Any], chart: str | None) -> str:
    from benchmarks.curves_doc import appended  # the curves' section, if they have run

    return appended(_render(data, chart))


def _render(data: dict[str, Any], chart: str | None) -> str:
    libs = [lib for lib in NAMES if lib in data["metrics"]]
    taskq = data["metrics"].get("taskq", {})
    floor_rows = [[m.label, cell(data, FLOOR, m), m.unit] for m in FLOOR_METRICS]
    taskq_rows = [[m.label, cell(data, "taskq", m), m.unit] for m in TASKQ_ONLY if m.key in taskq]
    x = taskq.get("_extra", {})
    v = data["versions"].get("taskq", {})
    payload = data["metrics"].get(FLOOR, {}).get("_extra", {}).get("payload_bytes")
    metrics_off = str(x.get("metrics_off_mode", "n/a")).removeprefix("off: ")
    s = data["sizes"]
    windows = s["throughput"].get("windows", 1)
    return f"""# Benchmarks

taskq side by side with Celery, RQ, Dramatiq, Huey, arq, SAQ and taskiq, on one machine and
one Redis, in one run. This page is written by the benchmark itself from its latest full run
(`benchmarks/results/latest.json`); do not edit it by hand.

```
python benchmarks/run.py            # the full run, cost curves included (~50 min)
python benchmarks/run.py --quick    # a smoke run of taskq and redis-py (what CI runs)
python benchmarks/run.py --only taskq,celery --runs 5
python benchmarks/curves.py         # the cost curves alone
python -m benchmarks.goals          # judge issue 22's goals on the latest run again
```

## The machine

{_machine(data)}

## Results

Medians of {data["runs"]} runs, with the smallest and largest run in brackets. A dash: the
library has no such API (see "How each library runs" below) or the metric does not apply.
Each peer has two columns: its defaults, and "tuned", the settings its own documentation
gives for many short tasks (listed with their sources in "How each library runs"). The
tuned settings are the worker's: a tuned column's enqueue rows read "same" (the producer is
the default one), and recovery is measured with the defaults only.

{_results(data, libs)}

{_footnotes(data, libs)}

Each peer's best median (its defaults or its tuned settings, whichever is better; "tuned"
where the tuned one is) divided by taskq's (the chart below shows the same ratios):

{_ratios(data, libs)}

{f"![throughput and latency ratios]({chart})" if chart else "(no chart: matplotlib missing)"}

The floors, on this machine: redis-py alone (payload {payload} bytes, the size of taskq's
message for a no-op task; and a PING from a process that slept, which bounds every library's
first task after idleness), and OpenTelemetry's SDK alone, what a span costs whoever makes it:

{_table(["", "median (min–max)", "unit"], floor_rows)}

taskq only:

{_table(["", "median (min–max)", "unit"], taskq_rows)}

Metrics on is taskq's default (middleware: {", ".join(v.get("middleware", [])) or "none"}).
Metrics off: {metrics_off}. "No middleware at all" clears the app's middleware list (no
metrics, heartbeats, alerts or task logs). Tracing, off by default, is on in one variant:
`instrument(tq)` with an OpenTelemetry SDK `TracerProvider` that has no span processor (each
task's span is made, recorded and ended, and none exported: an exporter's cost is its
collector's setup), metrics on, and messages that carry a W3C `traceparent`, as tasks
enqueued by a traced web request do.

## Targets

All with delivery guarantees on (leases, fencing) and taskq's default monitoring.

{_targets(data)}

## Where the time goes

{_profiles(data)}

## Recovery after SIGKILL

Seconds from the SIGKILL of the worker that held the tasks until every one of them was done
by the other worker, each library with its own recovery feature set short (its setting in
brackets in the results table; what it does and where it is documented below).

{_recovery_notes(data, libs)}

## Redis memory per queued task

What {s.get("memory", {}).get("n", 100000):,} queued tasks of one integer argument hold in
Redis, no worker running (see Method):

{_memory_notes(data, libs)}

## Flow control

{_flow()}

## Workflows

{_workflows()}

## How each library runs

{_setup(data, libs)}

Every worker logs at WARNING (per-task INFO lines would measure logging, not queueing).
Peers' tasks are the kind each library is built around: plain functions for Celery, RQ,
Dramatiq and Huey, coroutines for arq, SAQ and taskiq; taskq is measured with both. arq is
at 0.25.0, not its newest: arq 0.26+ requires redis-py < 6, which Celery 5.7 does not
accept, and the peers share one environment.

## Method

- **Isolation.** One Redis server; each library has a database of its own (taskq also
  a key prefix), flushed after every measurement. Each measurement is a fresh process
  (`benchmarks/side.py`) in the library's own environment: taskq's `.venv`, the peers'
  `benchmarks/.venv-peers` (from `benchmarks/requirements-peers.txt`, the same Python).
- **Interleaving.** Each of the {data["runs"]} runs goes through every scenario and, within
  it, through every library (taskq's variants alternating with the peers), in an order
  rotated from run to run, so that whatever else the machine is doing falls on all alike.
  A peer's two workers (defaults, tuned) run back to back, in an order that flips from run
  to run. taskq's processing variants run in groups, back to back, there and back (async: metrics
  off, on, on with tracing, then the same the other way; sync: off, on, on, off), so each
  run has two pairs of neighbours for each cost and neither side always goes first. A cost
  is the median over those pairs of the ratio of CPU time per task, on against off,
  seconds apart: the worker process's (all threads) and the Redis server's, read by the
  tasks' probe at the ends of the windows (`time.process_time()`, `INFO cpu`). This
  machine's speed drifts by half from one minute to the next (its host takes the cores
  away for a while); CPU time moves much less with it than rates do. The rates' own
  ratios are shown beside.
- **Enqueue.** {s["produce"]["n"]:,} no-op tasks one call at a time (after 50 warm-up calls),
  from a plain loop (sync) and from a coroutine awaiting each call (async), in
  {s["produce"].get("blocks", 10)} blocks that alternate with as many
  blocks of redis-py's own `RPUSH` of a message-sized payload in the same process
  (library, floor, floor, library, ...): the enqueue targets compare taskq with that
  interleaved floor, which the machine's drift cannot separate from it;
  {s["produce"]["n_bulk"]:,} in batches of {s["produce"]["batch"]} for bulk APIs.
- **Processing.** No-op tasks are enqueued first, then one worker process starts. The
  tasks count their starts and ends in shared memory (inherited by forked children) and
  write to Redis only on the first start, every 1,000th end (or half second) and every
  {s["throughput"]["n"]:,}th end, so the clock runs from the first task's start to the end
  of each window of {s["throughput"]["n"]:,} tasks: worker boot is excluded. A peer gets
  {s["throughput"]["n"]:,} tasks, one window per run (10 s or more each). taskq's
  {s["throughput"]["n"]:,} take a second or less, where this shared virtual machine's speed
  swings by half from one second to the next, so each of its runs pre-fills
  {windows} windows ({s["throughput"]["n"] * windows:,} tasks) and every window is one
  measurement (the first one is the peers' measurement exactly; each next one runs from
  the end of the one before); its medians are over {windows} windows × the variant's
  measurements in all runs (async and sync, metrics on and off: 2 a run). A library still busy
  {s["throughput"]["cap"]} s after its first task started is stopped and rated on the
  tasks done by then (marked †).
- **Pick-up latency.** A worker is started and warmed with one task; after 1 s at rest its
  RSS is read; then {s["latency"]["idle_probes"]} probes, each after 1 s of idleness; then
  {s["latency"].get("windows", 1)} windows of {s["latency"]["n"]} tasks at
  {s["latency"]["rate"]}/s on one fixed schedule. Each task records `monotonic() − t0` at
  its first line, `t0` being read just before the enqueue call (one clock for all
  processes). Percentiles are nearest-rank over the {s["latency"]["n"]} tasks of a window,
  each window one measurement (a p99 of {s["latency"]["n"]} is its 5 slowest tasks, which
  one stall of this shared machine moves); the medians are over
  {s["latency"].get("windows", 1)} × {data["runs"]} windows, for every library alike. The idle
  figure is the median probe of a run.
- **Recovery.** Worker A takes {s["recovery"]["k"]} tasks that sleep while they run in A;
  once A has started them (as many as it runs at once) worker B is started and left idle
  for {s["recovery"]["b_boot"]} s, then A's whole process tree gets SIGKILL. The time is
  from the kill until all {s["recovery"]["k"]} tasks have finished, bounded at
  {s["recovery"]["bound"]} s. taskq runs with its defaults (lease {v.get("lease_seconds")} s,
  renewal every {v.get("renew_seconds")} s) and is measured {s["recovery"]["reps"]} times;
  each peer once, with its own recovery feature configured as its documentation advises
  and set short (`BENCH_RECOVERY=1` in `benchmarks/libs/<name>_app.py`), all libraries at
  the same time (the waits are idle, each library in its own database). A library that
  did not recover is marked lost when none of the tasks ran again and its database held
  no key at the end; for one that did not recover, one more task is then enqueued, and
  whether the held tasks run within 15 s of it is noted (some recover only when new work
  comes in).
- **Redis memory per queued task.** No worker runs. A warm-up enqueue loads whatever
  scripts the library uses (the script cache counts in Redis's memory), then its database
  is emptied; `used_memory` (`INFO memory`, after `MEMORY PURGE`, on a fresh connection)
  is read before and after {s.get("memory", {}).get("n", 100000):,} tasks `hold(i)` of one
  integer argument are enqueued (the library's bulk API in batches of 1,000 where it has
  one; else one call each, asyncio producers with 100 calls in flight), the producer's
  connections closed before the second reading; the difference over the number of tasks.
  `used_memory` is the whole server's: the sum of `MEMORY USAGE` of the library's keys is
  shown beside it as a check. One library after another, after the runs, before the
  recovery phase; `benchmarks/payloads.py` reads taskq's figure the same way
  (`benchmarks/redis_memory.py`).
- **Worker memory.** RSS of the worker's whole process tree (supervisor, pool children,
  work horse) at rest, and right after the processing run.
- **The floor.** redis-py (with hiredis) alone: one `RPUSH` per round trip, sync and asyncio,
  and pipelines of 100, in a phase of its own at the start of each run, so every rate can
  also be read as a fraction of what this machine's Redis round trip allows (and, for one
  call at a time, interleaved with each library's enqueues, above).
"""
