# mypy: disable-error-code="import-not-found", disallow-untyped-decorators=False
# (the peers live in .venv-pgpeers, not in the environment mypy runs in)
"""PgQueuer's side of the PostgreSQL benchmark (``python -m benchmarks.pg.bench_pgqueuer``).

Its tables live in the schema ``pgqueuer`` of the benchmark's database (the connections'
``search_path``), installed with ``Queries.install()`` (durability: its default, every
table logged, as taskq's and procrastinate's are).

Settings, from PgQueuer's documentation ("Performance Tuning",
https://janbjorge.github.io/pgqueuer/guides/performance-tuning):

- ``batch_size=100``: jobs fetched per dequeue round trip (10 by default); "increase
  batch_size when jobs are short-lived (< 1 s)", which the benchmark's no-op tasks are.
  The guide gives no number (its examples: 20, 25); one worker's processing rate here
  (20,000 no-op tasks, one run each, 2 shared cores) kept rising with it: 10: 5.9k/s,
  20: 9.2k/s, 50: 9.9k/s, 100: 14.5k/s, 200: 15.8k/s, 500: 23.6k/s. 100 is used: ten
  times the default; larger batches go faster still on no-op tasks, at the cost the guide
  names (coarser control of concurrency), and the sweep is kept in the results;
- ``max_concurrent_tasks=200``: the guide's global cap, "at least 2 × batch_size";
- ``dequeue_timeout=10 s``: the guide's example (30 s by default); only the poll that
  backs LISTEN/NOTIFY up, which wakes an idle worker when a job is enqueued
  (https://janbjorge.github.io/pgqueuer/guides/concurrency-control/);
- the worker on an ``AsyncpgPoolDriver`` (pool of 5 to 20 connections), the guide's
  "Connection Pooling" for high-throughput deployments;
- one job per call: ``Queries.enqueue("noop", None)``; bulk: the same call with lists
  (``enqueue(["noop"] * 100, [None] * 100, [0] * 100)``, one INSERT for the batch: "Batch
  operations: enqueue ... thousands of jobs per round trip", https://pypi.org/project/pgqueuer/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from datetime import timedelta
from importlib.metadata import version
from typing import Any

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from benchmarks.pg import common

SCHEMA = "pgqueuer"
#: ``BENCH_PGQUEUER_BATCH`` / ``BENCH_PGQUEUER_MAX_TASKS`` override them (to compare; the
#: results say which ran)
BATCH_SIZE = int(os.environ.get("BENCH_PGQUEUER_BATCH", "100"))
MAX_CONCURRENT_TASKS = int(os.environ.get("BENCH_PGQUEUER_MAX_TASKS", "200"))
DEQUEUE_TIMEOUT = timedelta(seconds=10)
POOL = {"min_size": 5, "max_size": 20}
SERVER_SETTINGS = {"search_path": SCHEMA}
TUNING = "https://janbjorge.github.io/pgqueuer/guides/performance-tuning"
#: how batch_size was chosen (see the module's docstring)
SWEEP = (
    "one worker, 20,000 no-op tasks: batch_size 10: 5.9k/s, 20: 9.2k/s, 50: 9.9k/s, "
    "100: 14.5k/s, 200: 15.8k/s, 500: 23.6k/s (2026-12-06, one run each, shared machine)"
)
DOCS = {
    "batch_size, max_concurrent_tasks, dequeue_timeout, AsyncpgPoolDriver": TUNING,
    "LISTEN/NOTIFY and the dequeue_timeout poll": (
        "https://janbjorge.github.io/pgqueuer/guides/concurrency-control/"
    ),
    "enqueue with lists (batch operations)": "https://pypi.org/project/pgqueuer/",
}


async def _connect() -> asyncpg.Connection:
    return await asyncpg.connect(common.PG_URL, server_settings=SERVER_SETTINGS)


class PgQueuerLib:
    name = "pgqueuer"
    schema: str | None = SCHEMA
    # a finished job is deleted from the queue table (and logged in pgqueuer_log) when the
    # worker's status buffer is flushed
    unfinished = common.PgCounter(f"SELECT count(*) FROM {SCHEMA}.pgqueuer")

    def __init__(self) -> None:
        self._conn: asyncpg.Connection | None = None
        self._queries: Queries | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "broker": "postgresql",
            "versions": {"pgqueuer": version("pgqueuer"), "asyncpg": version("asyncpg")},
            "settings": {
                "worker": (
                    f"PgQueuer(AsyncpgPoolDriver(pool {POOL['min_size']}-{POOL['max_size']}))"
                    f".run(batch_size={BATCH_SIZE}, max_concurrent_tasks={MAX_CONCURRENT_TASKS}"
                    f", dequeue_timeout={DEQUEUE_TIMEOUT.total_seconds():g}s), 1 process"
                ),
                "enqueue": 'Queries(AsyncpgDriver(conn)).enqueue("noop", None)',
                "bulk": 'Queries.enqueue(["noop"] * 100, [None] * 100, [0] * 100)',
                "durability": "durable (the default: every table logged)",
                "batch_size sweep": SWEEP,
            },
            "docs": DOCS,
        }

    async def reset(self) -> None:
        common.reset_schema(SCHEMA)
        conn = await _connect()
        try:
            await Queries(AsyncpgDriver(conn)).install(create_schema=False)
        finally:
            await conn.close()

    async def open(self) -> None:
        self._conn = await _connect()
        self._queries = Queries(AsyncpgDriver(self._conn))

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
        self._conn = self._queries = None

    def _q(self) -> Queries:
        assert self._queries is not None, "open() first"
        return self._queries

    async def enqueue_noop(self) -> None:
        await self._q().enqueue("noop", None)

    async def enqueue_noop_bulk(self, n: int) -> None:
        await self._q().enqueue(["noop"] * n, [None] * n, [0] * n)

    async def enqueue_lat(self, tag: str, t0: float) -> None:
        await self._q().enqueue("lat", json.dumps({"tag": tag, "t0": t0}).encode())

    def run_worker(self) -> None:
        async def run() -> None:
            pool = await asyncpg.create_pool(common.PG_URL, server_settings=SERVER_SETTINGS, **POOL)
            pgq = PgQueuer(AsyncpgPoolDriver(pool))

            @pgq.entrypoint("noop")
            async def noop(job: Job) -> None:
                common.PROBE.noop()

            @pgq.entrypoint("lat")
            async def lat(job: Job) -> None:
                data = json.loads(job.payload or b"{}")
                common.PROBE.lat(data["tag"], data["t0"])

            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, pgq.shutdown.set)
            try:
                await pgq.run(
                    batch_size=BATCH_SIZE,
                    max_concurrent_tasks=MAX_CONCURRENT_TASKS,
                    dequeue_timeout=DEQUEUE_TIMEOUT,
                )
            finally:
                await pool.close()

        asyncio.run(run())


def make(args: argparse.Namespace) -> PgQueuerLib:
    return PgQueuerLib()


if __name__ == "__main__":
    common.main(make)
