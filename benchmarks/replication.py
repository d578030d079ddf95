#!/usr/bin/env python3
"""The cost of ``broker.min_replicas_acked``: producers through a ``redis+sentinel://`` URL
enqueue with and without a WAIT for one replica, on a Sentinel group of this run's own (a
master, one replica, three Sentinels, all on this machine's loopback).

    python benchmarks/replication.py            # 5,000 one-task enqueues and 20 x 500 bulk, 3 runs
    python benchmarks/replication.py --quick    # 500 and 5 x 200, one run (CI's smoke run)

For each setting, interleaved run by run: enqueues per second of one producer calling
``task.enqueue()`` one task at a time (the web request's case, one round trip each), and
tasks per second of ``enqueue_many`` batches of 500 (one WAIT covers a batch). Medians of
the runs. Loopback replication makes the WAIT cheap here; across a network it costs about
one round trip from the master to its slowest needed replica per enqueue call.

Results: ``benchmarks/results/replication.json`` and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from taskq_core import TaskQueue  # noqa: E402
from taskq_core.settings import Settings  # noqa: E402
from tests.replication.servers import SentinelGroup  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "replication.json"


def app(url: str, acked: int, prefix: str) -> TaskQueue:
    tq = TaskQueue(
        settings=Settings(broker_url=url, key_prefix=prefix, broker={"min_replicas_acked": acked})
    )
    tq.task(name="bench.noop")(lambda: None)
    return tq


def one_run(url: str, acked: int, singles: int, batches: int, size: int) -> dict[str, float]:
    tq = app(url, acked, f"bench-repl-{acked}")
    task = tq.get_task("bench.noop")
    try:
        task.enqueue()  # connect, load the scripts
        start = time.perf_counter()
        for _ in range(singles):
            task.enqueue()
        single = singles / (time.perf_counter() - start)
        sigs = [task.call() for _ in range(size)]
        start = time.perf_counter()
        for _ in range(batches):
            tq.enqueue_many(sigs)
        bulk = batches * size / (time.perf_counter() - start)
        tq.broker.client.flushdb()  # type: ignore[attr-defined]
        return {"single_per_s": single, "bulk_per_s": bulk}
    finally:
        tq.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    singles, batches, size, runs = (500, 5, 200, 1) if args.quick else (5000, 20, 500, 3)
    runs = args.runs or runs
    with tempfile.TemporaryDirectory() as tmp:
        group = SentinelGroup(Path(tmp))
        group.start()
        try:
            measured: dict[int, list[dict[str, float]]] = {0: [], 1: []}
            for _ in range(runs):
                for acked in (0, 1):  # interleaved: drift hits both alike
                    measured[acked].append(one_run(group.url, acked, singles, batches, size))
        finally:
            group.stop()
    out: dict[str, Any] = {"measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "runs": runs}
    for acked, rows in measured.items():
        out[f"acked_{acked}"] = {
            k: round(statistics.median(r[k] for r in rows)) for k in ("single_per_s", "bulk_per_s")
        }
    a0, a1 = out["acked_0"], out["acked_1"]
    out["single_cost"] = round(a1["single_per_s"] / a0["single_per_s"], 3)
    out["bulk_cost"] = round(a1["bulk_per_s"] / a0["bulk_per_s"], 3)
    out["single_us_added"] = round(1e6 / a1["single_per_s"] - 1e6 / a0["single_per_s"], 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))
    print()
    print("| through redis+sentinel:// | min_replicas_acked = 0 | = 1 | ratio |")
    print("|---|---|---|---|")
    print(f"| one task per enqueue | {a0['single_per_s']:,}/s | {a1['single_per_s']:,}/s "
          f"| {out['single_cost']} |")  # fmt: skip
    print(f"| enqueue_many of {size} | {a0['bulk_per_s']:,}/s | {a1['bulk_per_s']:,}/s "
          f"| {out['bulk_cost']} |")  # fmt: skip


if __name__ == "__main__":
    main()
