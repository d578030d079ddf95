"""Vacuuming the tables tasks pass through, when the server's autovacuum is off.

Every task's row is inserted, updated and deleted within seconds: without vacuum the dead
rows pile up, the tables and their indexes grow without end and every fetch reads more of
them. Autovacuum handles it (the schema sets these tables to be vacuumed after 1,000 dead
rows); where a server runs with ``autovacuum = off``, a worker does it instead: at most once
every :data:`EVERY` seconds across all workers (a lock in the ``records`` table), with
``VACUUM (ANALYZE, SKIP_LOCKED)`` so that it never waits for anyone and the planner's
statistics follow the queues. Health warns either way.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .broker import PostgresBroker

log = logging.getLogger("taskq.postgres")
#: seconds between two vacuums of the churning tables, across all workers
EVERY = 30.0
TABLES = ("tasks", "stats_log", "results", "idempotency", "records")


class Maintenance:
    """The vacuum duty of one broker (one process)."""

    def __init__(self) -> None:
        self.autovacuum: bool | None = None  # the server's setting, read once
        self.next_at = 0.0
        self.refused = False  # VACUUM not allowed to this user: said once, not tried again

    async def tick(self, broker: PostgresBroker) -> None:
        now = time.monotonic()
        if self.refused or now < self.next_at:
            return
        self.next_at = now + EVERY
        pool = await broker.apool()
        async with pool.connection() as conn:
            if self.autovacuum is None:
                cur = await conn.execute("SELECT current_setting('autovacuum') = 'on'")
                row = await cur.fetchone()
                self.autovacuum = bool(row and row[0])
            if self.autovacuum:
                return
        if not await broker.run_async(broker.lock_call("vacuum", int(EVERY * 1000))):
            return  # another worker vacuumed within EVERY seconds
        tables = ", ".join(f"{broker.schema}.{t}" for t in TABLES)
        async with pool.connection() as conn:
            try:
                # a vacuum of a large backlog may outlast the statement timeout, which is
                # sized for the broker's own calls: none for this one (it skips what is
                # locked, and waits for no one)
                await conn.execute("SET statement_timeout = 0")
                try:
                    await conn.execute(f"VACUUM (ANALYZE, SKIP_LOCKED) {tables}")
                finally:
                    await conn.execute("RESET statement_timeout")
            except Exception as exc:  # not the owner, or anything else: said once
                self.refused = True
                log.warning(
                    "taskq: the server's autovacuum is off and VACUUM of taskq's tables "
                    "failed (%s): dead rows will pile up; turn autovacuum on",
                    _first_line(exc),
                )


def _first_line(exc: Any) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
