# mypy: disable-error-code="import-not-found", disallow-untyped-decorators=False
# (the peers live in .venv-pgpeers, not in the environment mypy runs in)
"""procrastinate's side of the PostgreSQL benchmark
(``python -m benchmarks.pg.bench_procrastinate``).

Its tables live in the schema ``procrastinate`` of the benchmark's database (the
connections' ``search_path``), installed with ``App.schema_manager.apply_schema_async``.

Settings, from procrastinate's documentation:

- worker ``concurrency=30``: the number of jobs one worker runs at a time (1 by default),
  as "Execute multiple jobs at the same time" shows it (``app.run_worker(concurrency=30)``):
  https://procrastinate.readthedocs.io/en/stable/howto/production/concurrency.html
  (one worker, 20,000 no-op tasks, here: concurrency 1: 462/s, 10: 565/s, 30: 629/s,
  60: 607/s; 30 with the pool raised from 4 to 10 connections: 699/s, within the runs'
  spread (610-740/s): the pool is left at its default);
- ``listen_notify=True`` (the default: LISTEN/NOTIFY wakes the worker when a job is
  deferred) and ``fetch_job_polling_interval=5.0`` (the default: the poll that backs it up);
  "Limit the number of opened connections" and the API reference (``App.run_worker``):
  https://procrastinate.readthedocs.io/en/stable/howto/connections.html
  https://procrastinate.readthedocs.io/en/main/reference.html
- one job per call: ``Task.defer_async``; bulk: ``Task.batch_defer_async`` (one query for
  the batch): https://procrastinate.readthedocs.io/en/stable/howto/async.html
  https://procrastinate.readthedocs.io/en/main/howto/basics/batch_defer.html
- the worker runs in code (``App.run_worker_async`` inside ``App.open_async``), as "Launch
  a worker" shows: https://procrastinate.readthedocs.io/en/stable/howto/basics/worker.html
- the connector: ``PsycopgConnector`` (psycopg 3, the asynchronous one the docs name first):
  https://procrastinate.readthedocs.io/en/stable/howto/basics/connector.html
"""

from __future__ import annotations

import argparse
import asyncio
import os
from importlib.metadata import version
from typing import Any

import procrastinate

from benchmarks.pg import common

SCHEMA = "procrastinate"
#: ``BENCH_PROCRASTINATE_CONCURRENCY`` overrides it (to compare; the results say which ran)
CONCURRENCY = int(os.environ.get("BENCH_PROCRASTINATE_CONCURRENCY", "30"))
#: ``BENCH_PROCRASTINATE_POOL``: the psycopg pool's max_size (psycopg_pool's default: 4)
POOL_MAX = int(os.environ.get("BENCH_PROCRASTINATE_POOL", "0")) or None
LISTEN_NOTIFY = True
FETCH_JOB_POLLING_INTERVAL = 5.0
#: how concurrency was chosen (see the module's docstring)
SWEEP = (
    "one worker, 20,000 no-op tasks: concurrency 1: 462/s, 10: 565/s, 30: 629/s, 60: 607/s; "
    "30 with a pool of 10: 699/s (2026-12-06, one run each, shared machine)"
)
DOCS = {
    "concurrency": "https://procrastinate.readthedocs.io/en/stable/howto/production/concurrency.html",
    "listen_notify, fetch_job_polling_interval": (
        "https://procrastinate.readthedocs.io/en/stable/howto/connections.html; "
        "https://procrastinate.readthedocs.io/en/main/reference.html"
    ),
    "defer_async": "https://procrastinate.readthedocs.io/en/stable/howto/async.html",
    "batch_defer_async": "https://procrastinate.readthedocs.io/en/main/howto/basics/batch_defer.html",
    "run_worker_async": "https://procrastinate.readthedocs.io/en/stable/howto/basics/worker.html",
    "PsycopgConnector": "https://procrastinate.readthedocs.io/en/stable/howto/basics/connector.html",
}

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=common.PG_URL,
        kwargs={"options": f"-c search_path={SCHEMA}"},
        **({"min_size": POOL_MAX, "max_size": POOL_MAX} if POOL_MAX else {}),
    )
)


@app.task(name="noop", queue="default")
async def noop() -> None:
    common.PROBE.noop()


@app.task(name="lat", queue="default")
async def lat(tag: str, t0: float) -> None:
    common.PROBE.lat(tag, t0)


class Procrastinate:
    name = "procrastinate"
    schema: str | None = SCHEMA
    unfinished = common.PgCounter(
        f"SELECT count(*) FROM {SCHEMA}.procrastinate_jobs WHERE status IN ('todo', 'doing')"
    )

    def describe(self) -> dict[str, Any]:
        return {
            "broker": "postgresql",
            "versions": {
                "procrastinate": version("procrastinate"),
                "psycopg": version("psycopg"),
                "psycopg-pool": version("psycopg-pool"),
            },
            "settings": {
                "worker": (
                    f"App.run_worker_async(concurrency={CONCURRENCY}, "
                    f"listen_notify={LISTEN_NOTIFY}, "
                    f"fetch_job_polling_interval={FETCH_JOB_POLLING_INTERVAL}), 1 process"
                ),
                "enqueue": "Task.defer_async()",
                "bulk": "Task.batch_defer_async(*[{}] * 100)",
                "connector": "PsycopgConnector (psycopg_pool defaults)",
                "concurrency sweep": SWEEP,
            },
            "docs": DOCS,
        }

    async def reset(self) -> None:
        common.reset_schema(SCHEMA)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()

    async def open(self) -> None:
        await app.open_async()

    async def close(self) -> None:
        await app.close_async()

    async def enqueue_noop(self) -> None:
        await noop.defer_async()

    async def enqueue_noop_bulk(self, n: int) -> None:
        await noop.batch_defer_async(*({} for _ in range(n)))

    async def enqueue_lat(self, tag: str, t0: float) -> None:
        await lat.defer_async(tag=tag, t0=t0)

    def run_worker(self) -> None:
        async def run() -> None:
            async with app.open_async():
                await app.run_worker_async(
                    queues=["default"],
                    concurrency=CONCURRENCY,
                    listen_notify=LISTEN_NOTIFY,
                    fetch_job_polling_interval=FETCH_JOB_POLLING_INTERVAL,
                    install_signal_handlers=True,
                )

        asyncio.run(run())


def make(args: argparse.Namespace) -> Procrastinate:
    return Procrastinate()


if __name__ == "__main__":
    common.main(make)
