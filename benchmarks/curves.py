#!/usr/bin/env python3
"""How taskq's cost grows with the work: six curves, taskq alone, on a redis-server of this
run's own (a free loopback port, no persistence; never the Redis on 6379).

    python benchmarks/curves.py                  # the full run, about 15 minutes on 2 cores
    python benchmarks/curves.py --quick          # smoke run, 10-20 s, no charts (tests/benchmarks)
    python benchmarks/curves.py --only depth,queues --depth-max 100000 --out /tmp/c.json

a. **depth**: 1,000 to 10,000,000 queued no-ops (``enqueue_many``, batches of 10,000): one
   enqueue per call, a worker's fetch of 16 and its settle (``RedisBroker.fetch`` and
   ``settle``), and the routes health, status, Prometheus metrics and the failed list
   (``RouteTable.dispatch``, what every web adapter calls) with 1,000 dead-lettered tasks;
b. **delayed**: 1,000 to 1,000,000 tasks all due at one instant: promotion (``fetch`` with
   nothing to lease, until every one is promoted) per task, and with an idle worker, each
   task's start minus its due time;
c. **queues**: one worker serving 1 to 100 queues, all empty but the last: its fetch, and
   an idle worker's pick-up of one task on the last queue;
d. **names**: 10 to 10,000 task names, each run once: Prometheus series, bytes, scrape time;
e. **payload**: 100 B to 1 MiB (``benchmarks/payloads.py``'s measurement): enqueue and
   processing per task, Redis memory per task;
f. **processes**: ``taskq worker --processes 1..8`` and pick-up latency at offered rates of
   200, 2,000 and 5,000 tasks/s (``benchmarks/side.py``'s worker and probe).

The growth of every metric is computed (``benchmarks/curves_growth.py``). Outputs:
``benchmarks/results/curves.json`` (``--out``), ``docs/images/curve-<name>.png`` (next to
``--out`` when it is elsewhere), and the section of ``docs/benchmarks.md``
(``benchmarks/curves_doc.py``), re-rendered by a full run written to the default place.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from benchmarks import curves_measure as cm  # noqa: E402
from benchmarks import curves_measure_workers as cw  # noqa: E402
from benchmarks.curves_growth import LABELS, classify  # noqa: E402
from tests.replication.servers import Node  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "curves.json"
IMAGES = ROOT / "docs" / "images"
KIB = 1024
FULL: dict[str, Any] = {
    "depth": {"sizes": [10**3, 10**4, 10**5, 10**6, 10**7], "rounds": 25, "route_reps": 20,
              "dead": 1000},
    "delayed": {"sizes": [10**3, 10**4, 10**5, 10**6], "margin": 1.0, "concurrency": 32},
    "queues": {"sizes": [1, 3, 10, 30, 100], "rounds": 50, "probes": 10, "idle": 0.5},
    "names": {"sizes": [10, 100, 1000, 10_000], "reps": 3},
    "payload": {"sizes": [(100, 5000), (KIB, 5000), (10 * KIB, 2000), (100 * KIB, 300),
                          (1024 * KIB, 40)]},
    "processes": {"procs": [1, 2, 4, 8], "rates": [200, 2000, 5000], "seconds": 3.0,
                  "idle": 1.0},
}  # fmt: skip
QUICK: dict[str, Any] = {
    "depth": {"sizes": [1000, 3000, 10_000], "rounds": 6, "route_reps": 3, "dead": 200},
    "delayed": {"sizes": [100, 300, 1000], "margin": 0.3, "concurrency": 32},
    "queues": {"sizes": [1, 10, 100], "rounds": 10, "probes": 3, "idle": 0.1},
    "names": {"sizes": [10, 100, 300], "reps": 2},
    "payload": {"sizes": [(100, 300), (KIB, 300), (10 * KIB, 200)]},
    "processes": {"procs": [1, 2], "rates": [200, 2000], "seconds": 0.25, "idle": 0.2},
}

Spec = list[tuple[str, str, str]]


def _metrics(spec: Spec) -> list[dict[str, str]]:
    return [{"key": k, "label": label, "unit": unit} for k, label, unit in spec]


def describe_curves(sizes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Titles, axes, metrics (classified) and columns (shown only) of each curve."""
    dead = sizes["depth"]["dead"]
    rates = sizes["processes"]["rates"]
    return {
        "depth": {
            "title": "Queue depth", "x": "depth", "x_label": "queued tasks",
            "metrics": _metrics([
                ("enqueue_us", "enqueue, one per call", "µs"),
                ("fetch_us_per_task", "fetch of 16, per task", "µs"),
                ("settle_us_per_task", "settle, per task", "µs"),
                ("health_ms", "GET /health", "ms"), ("status_ms", "GET /status", "ms"),
                ("prometheus_ms", "GET /metrics/prometheus", "ms"),
                ("failed_ms", "GET /failed", "ms")]),
            "columns": _metrics([("fill_per_s", "fill", "tasks/s")]),
            "method": f"No-op tasks of one integer argument filled with `enqueue_many` "
            "(batches of 10,000). At each depth, rounds of 16 one-task enqueues (`Task.enqueue`, "
            "each timed), one fetch of 16 (`RedisBroker.fetch`, the worker's lease) and one "
            "settle of those 16 as succeeded, so the depth stays put; medians. The routes "
            "are called in-process through `RouteTable.dispatch` (what every web adapter "
            f"calls; no HTTP server), median of the calls, with {dead:,} dead-lettered tasks "
            "in the same queue.",
        },
        "delayed": {
            "title": "Delayed tasks", "x": "delayed", "x_label": "delayed tasks due at once",
            "metrics": _metrics([
                ("promote_us_per_task", "promotion, per task", "µs"),
                ("lateness_p50_ms", "lateness p50", "ms"),
                ("lateness_p99_ms", "lateness p99", "ms")]),
            "columns": _metrics([("enqueue_per_s", "enqueue", "tasks/s"),
                                 ("promote_calls", "fetch calls", "")]),
            "method": "N tasks with one `eta`, all due at the same instant. Promotion: no "
            "worker; once due, `fetch` calls with nothing to lease (the first step of a "
            "worker's fetch: at most 1,000 due tasks a call) until none is left delayed; "
            "their time over N. Lateness: the same again with an idle worker in the "
            f"process (concurrency {sizes['delayed']['concurrency']}); each task's start "
            "minus the due time, so the p99 of a large N is mostly the time to run them all.",
        },
        "queues": {
            "title": "Queues served by one worker", "x": "queues", "x_label": "queues",
            "metrics": _metrics([
                ("fetch_us", "fetch of 16", "µs"),
                ("idle_pickup_p50_ms", "idle pick-up p50", "ms"),
                ("idle_pickup_max_ms", "idle pick-up max", "ms")]),
            "method": "Every queue empty but the last (the lowest priority: the fetch "
            "looks at every queue first). The fetch of 16 as a worker sends it, median; then "
            "a worker in the process, idle for "
            f"{sizes['queues']['idle']:g} s before each of {sizes['queues']['probes']} "
            "tasks enqueued on the last queue: start minus the time before the enqueue.",
        },
        "names": {
            "title": "Distinct task names", "x": "names", "x_label": "task names",
            "metrics": _metrics([
                ("series", "Prometheus series", "series"), ("bytes", "/metrics size", "bytes"),
                ("scrape_ms", "scrape time", "ms")]),
            "columns": _metrics([("series_naming_a_task", "series naming a task", "")]),
            "method": "N tasks registered, each enqueued and run once (a burst worker, "
            "metrics on: the default), then `GET /metrics/prometheus` in-process: its sample "
            "lines, bytes, median time.",
        },
        "payload": {
            "title": "Payload size", "x": "payload", "x_label": "payload", "x_bytes": True,
            "metrics": _metrics([
                ("enqueue_us_per_task", "enqueue", "µs/task"),
                ("worker_us_per_task", "processing", "µs/task"),
                ("memory_per_task", "Redis memory", "bytes/task")]),
            "columns": _metrics([("tasks", "tasks", ""),
                                 ("enqueue_per_s", "enqueue", "tasks/s"),
                                 ("worker_per_s", "processing", "tasks/s")]),
            "method": "`benchmarks/payloads.py`'s measurement (`payload_case`): random "
            "bytes as one base64 string, compression off (the default), `enqueue_many` in "
            "batches of about 2 MiB, then a burst worker (concurrency 32) runs them; "
            "`used_memory` per queued task.",
        },
        "processes": {
            "title": "Worker processes", "x": "processes", "x_label": "worker processes",
            "metrics": _metrics([(f"p{q}_ms_at_{r}", f"p{q} at {r:,}/s", "ms")
                                 for r in rates for q in (50, 99)]
                                + [("idle_pickup_ms", "idle pick-up", "ms")]),
            "columns": _metrics([(f"achieved_per_s_at_{r}", f"sent at {r:,}/s", "tasks/s")
                                 for r in rates]
                                + [(f"calls_at_{r}", f"enqueue calls at {r:,}/s", "")
                                   for r in rates]
                                + [("boot_s", "boot", "s"), ("settled_s", "settled", "s")]),
            "method": "`taskq worker --processes N` (`benchmarks/side.py`'s worker and "
            "probe, concurrency 16 a process), on the machine's cores with Redis and the "
            f"producer. One task after {sizes['processes']['idle']:g} s idle, then "
            f"{sizes['processes']['seconds']:g} s of tasks at each offered rate from a paced "
            "producer: task i is due i/rate s after the start, one enqueue per call while the "
            "producer keeps up, what is due at once in one `enqueue_many` when it fell behind "
            "(it shares the cores with the workers; the enqueue calls are counted). Each task "
            "records its start minus the time read just before its enqueue call "
            "(`time.monotonic()`). Nearest-rank percentiles.",
        },
    }  # fmt: skip


def chart(results: Path, out: Path) -> bool:
    """The curves' charts, drawn by whichever environment has matplotlib."""
    for py in (ROOT / "benchmarks/.venv-peers/bin/python", Path(sys.executable)):
        if (
            py.exists()
            and not subprocess.run(
                [str(py), "-c", "import matplotlib"], capture_output=True, check=False
            ).returncode
        ):
            script = ROOT / "benchmarks" / "curves_chart.py"
            subprocess.run([str(py), str(script), str(results), str(out)], check=True, cwd=ROOT)
            return True
    print("no environment with matplotlib: charts skipped", file=sys.stderr)
    return False


def log(msg: str) -> None:
    print(f"[curves {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(name: str, url: str, s: dict[str, Any]) -> dict[str, Any]:
    if name == "depth":
        return cm.depth_curve(url, s["sizes"], s["rounds"], s["route_reps"], s["dead"], log)
    if name == "delayed":
        return cm.delayed_curve(url, s["sizes"], s["margin"], s["concurrency"], log)
    if name == "queues":
        return cw.queues_curve(url, s["sizes"], s["rounds"], s["probes"], s["idle"], log)
    if name == "names":
        return cw.names_curve(url, s["sizes"], s["reps"], log)
    if name == "payload":
        return cw.payload_curve(url, s["sizes"], log)
    return cw.processes_curve(url, s["procs"], s["rates"], s["seconds"], s["idle"], log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (about 20 s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON results")
    parser.add_argument("--only", help=f"comma-separated curves of {','.join(FULL)}")
    parser.add_argument("--depth-max", type=int, help="deepest queue (e.g. 100000)")
    parser.add_argument("--delayed-max", type=int, help="most delayed tasks")
    parser.add_argument("--no-charts", action="store_true", help="(--quick draws none)")
    args = parser.parse_args()
    sizes = json.loads(json.dumps(QUICK if args.quick else FULL))
    sizes["payload"]["sizes"] = [tuple(x) for x in sizes["payload"]["sizes"]]
    for key, cap in (("depth", args.depth_max), ("delayed", args.delayed_max)):
        if cap:
            sizes[key]["sizes"] = [n for n in sizes[key]["sizes"] if n <= cap]
    names = [n.strip() for n in args.only.split(",")] if args.only else list(FULL)
    if unknown := [n for n in names if n not in FULL]:
        parser.error(f"unknown curves {unknown}; known: {','.join(FULL)}")
    specs = describe_curves(sizes)
    # the dead-lettered tasks log task.failed, and the flushes between points trip taskq's
    # data-loss alert: both the benchmark's own doing (it checks every outcome itself)
    logging.getLogger("taskq").setLevel(logging.CRITICAL)
    started = time.perf_counter()
    curves: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        node = Node(Path(tmp), "bench", ["--save", "", "--appendonly", "no"])
        node.start()
        try:
            url = f"redis://127.0.0.1:{node.port}/0"
            # benchmarks/side.py and probe.py read these when imported (curve f)
            os.environ["BENCH_REDIS_URL"], os.environ["BENCH_PROBE_KEY"] = url, "bench-probe"
            c = redis.Redis(port=node.port, socket_timeout=300)
            version = c.info("server")["redis_version"]
            for name in names:
                t = time.perf_counter()
                c.flushall()
                curve = {**specs[name], **measure(name, url, sizes[name])}
                xs = [p[curve["x"]] for p in curve["points"]]
                curve["growth"] = {
                    m["key"]: classify(xs, [p[m["key"]] for p in curve["points"]])
                    for m in curve["metrics"]
                }
                curve["seconds"] = round(time.perf_counter() - t, 1)
                curves[name] = curve
                growth = {k: g["label"] for k, g in curve["growth"].items()}
                log(f"{name}: {curve['seconds']} s; growth {growth}")
            c.close()
        finally:
            node.kill()
    out: dict[str, Any] = {
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "quick": args.quick,
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "redis": version},
        "labels": list(LABELS),
        "seconds": round(time.perf_counter() - started, 1),
        "sizes": sizes,
        "curves": curves,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    log(f"{out['seconds']} s; written to {args.out}")
    default = args.out.resolve() == RESULTS.resolve()
    if not (args.no_charts or args.quick):
        chart(args.out, IMAGES if default else args.out.parent)
    latest = ROOT / "benchmarks" / "results" / "latest.json"
    if default and latest.exists():
        from benchmarks import report

        png = ROOT / "docs" / "benchmarks-ratios.png"
        doc = ROOT / "docs" / "benchmarks.md"
        report.write_doc(json.loads(latest.read_text()), doc, png if png.exists() else None)
        log(f"re-rendered {doc.relative_to(ROOT)} with the curves")


if __name__ == "__main__":
    main()
