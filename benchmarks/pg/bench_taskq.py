"""taskq's side of the PostgreSQL benchmark (``python -m benchmarks.pg.bench_taskq``).

``--url`` names the broker: PostgreSQL (the default, the benchmark's database) or Redis
(``--url redis://127.0.0.1:6379/15``: taskq on Redis, the pick-up latency the PostgreSQL
broker is judged against; the database is flushed, and must be empty or the benchmark's).

On PostgreSQL the schema is made with ``taskq_core.brokers.postgres.schema.migrate`` (what
``taskq db migrate`` runs); while that module does not exist, or the broker does not start,
the script reports itself skipped, with the reason. Settings are taskq's defaults, as in
``benchmarks/libs/taskq_app.py``: a worker of concurrency 16 (``tq.worker(...).run()``),
metrics on; one task per call is ``Task.enqueue_async()``, bulk is
``TaskQueue.enqueue_many_async`` (one round trip per batch).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import subprocess
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from benchmarks.pg import common

QUEUE = "default"
CONCURRENCY = 16  # the worker's default (settings.worker.concurrency)
MARKER = "taskq-benchmarks:owner"  # as benchmarks/run.py marks a Redis database its own
PG_MIGRATE = "taskq_core.brokers.postgres.schema"


def _check_postgres() -> Any:
    """The PostgreSQL broker's schema module, or :class:`common.Skip` with the reason."""
    try:
        found = importlib.util.find_spec(PG_MIGRATE) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise common.Skip(
            f"taskq's PostgreSQL broker is not there yet: {PG_MIGRATE} does not exist "
            "(nothing to run `taskq db migrate` with); taskq-postgres not measured"
        )
    module = importlib.import_module(PG_MIGRATE)
    if not callable(getattr(module, "migrate", None)):
        raise common.Skip(f"{PG_MIGRATE} has no migrate(); taskq-postgres not measured")
    return module


def _revision() -> str:
    """The commit taskq ran from, and whether taskq_core had changes not committed then
    (the PostgreSQL broker measured while it was being written says so)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=common.ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    try:
        head, dirty = (
            git("rev-parse", "--short", "HEAD"),
            git("status", "--porcelain", "taskq_core"),
        )
    except OSError:
        return "unknown"
    return head + (" + uncommitted changes in taskq_core" if dirty else "")


class TaskqLib:
    name = "taskq"

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self.schema = (
            dict(parse_qsl(urlsplit(url).query)).get("schema", "taskq") if self.postgres else None
        )
        self.schema_module = _check_postgres() if self.postgres else None
        from taskq_core import TaskQueue

        try:
            self.tq = TaskQueue(url, key_prefix="bench")
        except Exception as exc:  # the broker is being written: say why it does not run
            if not self.postgres:
                raise
            raise common.Skip(
                f"taskq's PostgreSQL broker does not start yet ({type(exc).__name__}: {exc}); "
                "taskq-postgres not measured"
            ) from exc

        @self.tq.task(name="noop")
        async def noop() -> None:
            common.PROBE.noop()

        @self.tq.task(name="lat")
        async def lat(tag: str, t0: float) -> None:
            common.PROBE.lat(tag, t0)

        self.noop, self.lat = noop, lat

    def describe(self) -> dict[str, Any]:
        versions = {"taskq": version("taskq")}
        if not self.postgres:
            versions |= {"redis": version("redis"), "hiredis": version("hiredis")}
        return {
            "broker": "postgresql" if self.postgres else "redis",
            "url": self.url,
            "versions": versions,
            "revision": _revision(),
            "settings": {
                "worker": f"tq.worker(queues=[{QUEUE!r}], concurrency={CONCURRENCY}).run(), "
                "1 process, default middleware (metrics on)",
                "enqueue": "Task.enqueue_async()",
                "bulk": "TaskQueue.enqueue_many_async([noop.call()] * 100)",
            },
            "docs": {"taskq": "docs/benchmarks.md (taskq's defaults)"},
        }

    async def reset(self) -> None:
        await self.tq.aclose()
        if self.postgres:
            self._reset_postgres()
        else:
            self._reset_redis()

    def _reset_redis(self) -> None:
        import redis

        c = redis.Redis.from_url(self.url)
        try:
            if c.dbsize() and not c.exists(MARKER):
                raise RuntimeError(
                    f"{self.url} holds {c.dbsize()} keys that are not the benchmark's; "
                    "empty it or pass another --url"
                )
            c.flushdb()
            c.set(MARKER, "1")
        finally:
            c.close()

    def _reset_postgres(self) -> None:
        """The broker's schema dropped, then made again by ``migrate(conn, schema)`` (what
        ``taskq db migrate`` runs): ``taskq`` unless the URL says ``?schema=...``."""
        import psycopg

        parts = urlsplit(self.url)
        schema = dict(parse_qsl(parts.query)).get("schema", "taskq")
        common.reset_schema(schema)
        dsn = urlunsplit(parts._replace(query=""))
        assert self.schema_module is not None
        with psycopg.connect(dsn, autocommit=True) as conn:
            self.schema_module.migrate(conn, schema)

    async def open(self) -> None:
        pass  # the broker connects on first use

    async def close(self) -> None:
        await self.tq.aclose()

    async def enqueue_noop(self) -> None:
        await self.noop.enqueue_async()

    async def enqueue_noop_bulk(self, n: int) -> None:
        await self.tq.enqueue_many_async([self.noop.call() for _ in range(n)])

    async def enqueue_lat(self, tag: str, t0: float) -> None:
        await self.lat.enqueue_async(tag, t0)

    def unfinished(self) -> int | None:
        info = self.tq.broker.queue_info([QUEUE])
        return sum(q.ready + q.delayed + q.leased for q in info)

    def run_worker(self) -> None:
        self.tq.worker(queues=[QUEUE], concurrency=CONCURRENCY).run()


def add_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--url", default=common.PG_URL, help="the broker (PostgreSQL or Redis)")


def make(args: argparse.Namespace) -> TaskqLib:
    return TaskqLib(args.url)


if __name__ == "__main__":
    common.main(make, add_args)
