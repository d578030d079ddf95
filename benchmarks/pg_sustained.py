"""A sustained run on the PostgreSQL broker: a producer at a steady rate, one worker, for
``--minutes``; every ``--every`` seconds the throughput, the pick-up latency (p50/p99) and
the size and dead tuples of each table. What it shows: throughput and latency do not drift,
and the tables stay their size (expired results and counts are removed in bounded batches,
autovacuum reclaims the space). Results: ``benchmarks/results/postgres-sustained.json``.

    python benchmarks/pg_sustained.py --minutes 10 --rate 500
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from taskq_core import Settings, TaskQueue
from taskq_core.brokers.postgres import migrate

URL = "postgresql://postgres@127.0.0.1:5432/taskq_sustained"
TABLES = ("tasks", "results", "stats_log", "stats", "idempotency")


def sizes(url: str) -> dict[str, dict[str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        out = {}
        for table in TABLES:
            row = conn.execute(
                "SELECT pg_total_relation_size(%s), coalesce(n_live_tup, 0), "
                "coalesce(n_dead_tup, 0) FROM pg_stat_user_tables "
                "WHERE schemaname = 'taskq' AND relname = %s",
                (f"taskq.{table}", table),
            ).fetchone()
            if row:
                out[table] = {"bytes": int(row[0]), "live": int(row[1]), "dead": int(row[2])}
        return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=URL)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=500.0, help="tasks enqueued per second")
    ap.add_argument("--every", type=float, default=30.0)
    ap.add_argument("--result-ttl", type=float, default=60.0)
    ap.add_argument("--out", default="benchmarks/results/postgres-sustained.json")
    args = ap.parse_args()
    admin = args.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        name = args.url.rsplit("/", 1)[1]
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(args.url, autocommit=True) as conn:
        migrate(conn)
    prefix = f"sustained-{uuid.uuid4().hex[:6]}"
    tq = TaskQueue(
        settings=Settings(
            broker_url=args.url,
            key_prefix=prefix,
            result_ttl=args.result_ttl,
            worker={"concurrency": 50},
        )
    )
    lock = threading.Lock()
    latencies: list[float] = []
    done = [0]

    @tq.task(name="sustained.noop")
    async def noop(sent: float) -> None:
        with lock:
            latencies.append(time.time() - sent)
            done[0] += 1

    worker = tq.worker(handle_signals=False)
    wt = threading.Thread(target=worker.run, daemon=True)
    wt.start()
    stop = threading.Event()

    def produce() -> None:
        interval = 1.0 / args.rate
        nxt = time.monotonic()
        while not stop.is_set():
            noop.enqueue(time.time())
            nxt += interval
            pause = nxt - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    pt = threading.Thread(target=produce, daemon=True)
    pt.start()
    samples: list[dict[str, Any]] = []
    start = time.monotonic()
    end = start + args.minutes * 60
    last_done = 0
    while time.monotonic() < end:
        time.sleep(args.every)
        with lock:
            lat = sorted(latencies)
            latencies.clear()
            now_done = done[0]
        sample = {
            "t_s": round(time.monotonic() - start, 1),
            "done_per_s": round((now_done - last_done) / args.every, 1),
            "p50_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
            "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 2) if lat else None,
            "tables": sizes(args.url),
        }
        last_done = now_done
        samples.append(sample)
        print(
            json.dumps({k: v for k, v in sample.items() if k != "tables"}),
            {t: v["bytes"] // 1024 for t, v in sample["tables"].items()},
            flush=True,
        )
    stop.set()
    pt.join(10)
    loop = worker._loop
    if loop is not None and not loop.is_closed():
        loop.call_soon_threadsafe(worker.stop)
    wt.join(30)
    tq.close()
    with psycopg.connect(args.url, autocommit=True) as conn:
        for table in ("tasks", "results", "stats", "stats_log", "records", "series"):
            conn.execute(f"DELETE FROM taskq.{table} WHERE ns = %s", (prefix,))
    Path(args.out).write_text(
        json.dumps(
            {
                "ran_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "minutes": args.minutes,
                "rate": args.rate,
                "result_ttl_s": args.result_ttl,
                "samples": samples,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
