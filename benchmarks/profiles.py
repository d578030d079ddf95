"""py-spy profiles of taskq for the targets a full run did not meet.

py-spy (installed in the peers' environment from ``requirements-peers.txt``; it is a
standalone sampler, so it profiles taskq's processes whatever environment they run in) is
attached to an idle worker that is then given a queue of no-op tasks (processing and
metrics targets). It samples the thread that holds the GIL (``--gil``): that is what
bounds one process. The report lists where the samples fall (by package of the innermost
frame, with the matching share of the run's time per task), the functions with the most
samples of their own, and the taskq_core functions with the most samples in total
(themselves and what they call). py-spy pauses the process for each sample (its
``--nonblocking`` mode garbled a third of the stacks here), so profiling slows it down;
the shares, not the speed, are the point.

The enqueue targets are not sampled: a sampler that stops the process lands on the lines
next to system calls far more often than the time they take, which for a 70 µs round trip
is most of the picture. ``libs/taskq_app.py`` times the parts of an enqueue instead. The
pick-up latency target gets a trace: the path from the enqueue call to the task's start,
cut where Redis receives the enqueue and the worker's fetch.
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY_SPY = ROOT / "benchmarks" / ".venv-peers" / "bin" / "py-spy"
RATE = 1000  # samples per second
FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
STDLIB = re.compile(r"^.*/lib/python3\.\d+/")
WAITS = {"select", "read_from_socket", "_read_from_socket", "recv", "recv_into", "poll"}
#: innermost Python frames whose time is the send syscall (on loopback TCP the kernel does
#: the receiving side's work there too)
SENDS = {
    ("AbstractConnection.send_packed_command", "redis/connection.py"),
    ("_SelectorSocketTransport.write", "asyncio/selector_events.py"),
}
NO_FRAME = "no Python frame (C code: event loop core, hiredis, orjson, ...)"
#: frames every worker sample passes through: the CLI and the loop's entry points
ENTRY = re.compile(r"\(taskq_core/cli/|^Worker\.(run|_run_owned|async_run) ")


def short(path: str) -> str:
    """A file path relative to the repository, site-packages or the standard library."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(str(ROOT) + "/"):
        return path[len(str(ROOT)) + 1 :]
    return STDLIB.sub("", path)


def category(fn: str, file: str) -> str:
    """What the innermost frame of a sample is doing, by package."""
    if fn.rsplit(".", 1)[-1] in WAITS and file.startswith(("selectors.py", "redis/", "socket")):
        return "socket: waiting for the reply (read, select)"
    if (fn, file) in SENDS:
        return "socket: sending (the syscall)"
    if file.startswith("taskq_core/"):
        return "taskq_core/" + file.split("/")[1].removesuffix(".py")
    if file.startswith("redis/"):
        return "redis-py"
    if file.startswith("asyncio/"):
        return "asyncio (event loop)"
    if file.startswith("benchmarks/"):
        return "benchmark probe and harness"
    if file.startswith(("concurrent/", "threading.py", "queue.py")):
        return "threads (stdlib)"
    if file.startswith("contextlib.py"):
        return "contextlib (stdlib)"
    if "/" not in file or file.startswith(("<frozen", "json/", "logging/")):
        return "other stdlib"
    return file.split("/", 1)[0]


@dataclass
class Profile:
    """Samples aggregated three ways."""

    samples: int = 0
    own: Counter[str] = field(default_factory=Counter)
    total: Counter[str] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)

    def add(self, frames: list[tuple[str, str]], count: int) -> None:
        self.samples += count
        if not frames:
            self.own[NO_FRAME] += count
            self.categories[NO_FRAME] += count
            return
        keys = [f"{fn} ({file})" for fn, file in frames]
        self.own[keys[-1]] += count
        for k in set(keys):
            self.total[k] += count
        self.categories[category(*frames[-1])] += count

    def report(self, us_per_op: float) -> dict[str, Any]:
        """Shares in %, and ``us_per_op`` split by those shares (µs per enqueue or task)."""
        n = self.samples or 1

        def rows(items: list[tuple[str, int]]) -> list[list[Any]]:
            return [[k, round(100 * v / n, 1), round(us_per_op * v / n, 2)] for k, v in items]

        core = [(k, v) for k, v in self.total.most_common() if "(taskq_core/" in k]
        return {
            "samples": self.samples,
            "us_per_op": round(us_per_op, 2),
            "by_package": rows(self.categories.most_common(12)),
            "top_self": rows(self.own.most_common(15)),
            "top_total_taskq_core": rows([kv for kv in core if not ENTRY.search(kv[0])][:15]),
        }


def parse(raw: Path, focus: str | None = None) -> Profile:
    """Aggregate py-spy's raw (collapsed) stacks. ``focus``: keep only stacks through a
    function of that name in ``benchmarks/side.py`` and drop the frames above it."""
    prof = Profile()
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not count_s.isdigit():
            continue
        frames = []
        for f in stack.split(";") if stack else []:
            m = FRAME.match(f)
            if m is not None:
                frames.append((m["fn"], short(m["file"])))
        if focus is not None:
            at = [
                i
                for i, (fn, file) in enumerate(frames)
                if fn == focus and file == "benchmarks/side.py"
            ]
            if not at:
                continue
            frames = frames[at[0] + 1 :]
        prof.add(frames, int(count_s))
    return prof


def _median(data: dict[str, Any], key: str) -> float | None:
    entry = data["metrics"].get("taskq", {}).get(key) or {}
    value = entry.get("median")
    return float(value) if value else None


def _jobs(failed: set[str]) -> list[tuple[str, list[str], str, dict[str, Any]]]:
    """(name, targets it explains, scenario, parameters) for each profile to take."""
    jobs: list[tuple[str, list[str], str, dict[str, Any]]] = []
    # issue 22's goals (goals.py) tighten issue 7's targets: the same profile explains both
    failed = failed | {name.removeprefix("goal_") for name in failed}
    for kind, n, targets in (
        ("async", 60000, {"throughput_async", "metrics_cost_async"}),
        ("sync", 30000, {"throughput_sync", "metrics_cost_sync"}),
        ("async-traced", 30000, {"tracing_cost_async"}),
    ):
        why = failed & targets
        if why:
            spec = {"n": n, "boot_s": 2.0, "timeout": 300, "rate": RATE, "variant": kind}
            name = "throughput_" + kind.replace("-", "_")
            jobs.append((name, sorted(why), "profile-throughput", spec))
    if "latency_p99" in failed:
        spec = {"n": 200, "rate": 50, "boot_timeout": 60}
        jobs.append(("latency_p99", ["latency_p99"], "latency-trace", spec))
    if "latency_idle" in failed:
        spec = {"n": 9, "rate": 1, "idle": 1.0, "boot_timeout": 60}
        jobs.append(("latency_idle", ["latency_idle"], "latency-trace", spec))
    return jobs


def run_profiles(
    data: dict[str, Any], base: str, side: Callable[..., dict[str, Any]]
) -> dict[str, Any]:
    """Profile taskq for each unmet target; returns what the doc shows."""
    failed = {t["name"] for t in data["targets"] if t["met"] is False}
    if not failed:
        return {}
    if not PY_SPY.exists():
        return {"skipped": f"{PY_SPY.relative_to(ROOT)} is not installed"}
    out: dict[str, Any] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-profiles-"))
    for name, why, scenario, params in _jobs(failed):
        raw = tmp / f"{name}.txt"
        try:
            if scenario == "latency-trace":
                prof = side("taskq", "latency-trace", params, base)
                pace = (
                    f"each after {params['idle']:g} s of rest"
                    if params.get("idle")
                    else f"one at a time ({params['rate']}/s)"
                )
                prof["what"] = (
                    f"{params['n']} tasks {pace}, each cut at the Redis server's MONITOR "
                    "timestamps of the enqueue and of the worker's fetch (MONITOR adds work "
                    "to Redis: the total is above the plain run's)"
                )
            else:
                variant = params["variant"]
                spec = {k: v for k, v in params.items() if k != "variant"}
                spec |= {"out": str(raw), "gil": True, "py_spy": str(PY_SPY)}
                res = side("taskq", "profile-throughput", spec, base, variant=variant)
                rate = res["throughput_while_profiled"]
                run_rate = _median(data, name) or rate
                prof = parse(raw).report(1e6 / run_rate)
                prof["what"] = (
                    f"one worker running {params['n']:,} no-op {variant.replace('-', ', ')} "
                    "tasks, samples of "
                    f"the thread holding the GIL at {RATE} Hz; {rate:,.0f} tasks/s while "
                    f"sampled, {run_rate:,.0f}/s in the run (the µs split the run's time "
                    "per task, as if the GIL was busy throughout)"
                )
        except Exception as exc:  # a profile must not cost the results of the run
            out[name] = {"why": why, "error": str(exc)[-1500:]}
            continue
        prof["why"] = why
        out[name] = prof
    return out
