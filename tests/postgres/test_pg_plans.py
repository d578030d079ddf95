"""The broker's functions touch only the rows they work on, whatever the planner believes:
a fetch from a fresh backlog (statistics not yet gathered) once joined its picked rows to
the whole queue and scanned 20,000 rows to lease 100. Read from the plans that
``auto_explain`` reports for the statements inside the function."""

from __future__ import annotations

import re

import psycopg
import pytest

from taskq_core.brokers.base import EnqueueItem
from taskq_core.brokers.postgres.broker import PostgresBroker

pytestmark = pytest.mark.postgres


def plans(url: str, sql: str, repeat: int = 8) -> list[str]:
    """The plans of the statements ``sql`` runs, its last run's (after ``repeat - 1`` runs:
    PL/pgSQL turns to a generic plan after five)."""
    notes: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        # the plans a long-lived worker connection ends up with (PL/pgSQL caches a generic
        # plan after five runs): forced, so the test does not depend on when that happens
        conn.execute("SET plan_cache_mode = force_generic_plan")
        for _ in range(repeat - 1):
            conn.execute(sql)
        conn.add_notice_handler(lambda d: notes.append(d.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        conn.execute("SET auto_explain.log_min_duration = 0")
        conn.execute("SET auto_explain.log_nested_statements = on")
        conn.execute("SET auto_explain.log_analyze = on")
        conn.execute("SET client_min_messages = log")
        conn.execute(sql)
    return notes


def test_a_fetch_from_a_fresh_backlog_reads_only_what_it_leases(
    broker: PostgresBroker, postgres_url: str, prefix: str
) -> None:
    n = 20_000
    broker.enqueue([EnqueueItem("default", f"t{i}", "job", b"{}") for i in range(n)], 0)
    for want in (100, 1):
        sql = (
            f"SELECT * FROM taskq.fetch('{prefix}', ARRAY['high', 'default', 'low'], "
            f"{want}, 0, false, 10000, 5)"
        )
        found = plans(postgres_url, sql)
        assert found, "auto_explain reported nothing"
        removed = [
            int(x) for p in found for x in re.findall(r"Rows Removed by (?:Join )?Filter: (\d+)", p)
        ]
        assert max(removed, default=0) < 1_000, "\n\n".join(found)
        assert not any(re.search(r"Seq Scan on tasks", p) for p in found), "\n\n".join(found)


def test_only_the_partial_indexes_serve_a_scan_of_one_queue(postgres_url: str) -> None:
    """A query on one queue (``ns``, ``queue``, a state) must find its rows through the
    partial index of that state. When the primary key began with (ns, queue), a planner
    with stale statistics (the CI machine's server runs without autovacuum) took the key
    instead and read the whole queue to count its suspects: 20,000 rows for none. The key
    now starts with the id, so no other index can serve such a scan."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT i.indexrelid::regclass::text, i.indpred IS NOT NULL, "
            "(SELECT array_agg(a.attname ORDER BY k.n) FROM unnest(i.indkey) WITH ORDINALITY "
            " AS k(attnum, n) JOIN pg_attribute a ON a.attrelid = i.indrelid "
            " AND a.attnum = k.attnum) "
            "FROM pg_index i WHERE i.indrelid = 'taskq.tasks'::regclass"
        ).fetchall()
    leading_queue = {name for name, partial, cols in rows if cols[:2] == ["ns", "queue"]}
    partial = {name for name, is_partial, _ in rows if is_partial}
    # (tasks_slots and tasks_waiting, schema version 4: flow control's running leases with
    # slots, and the tasks waiting for one)
    expected = {
        "taskq.tasks_ready",
        "taskq.tasks_timed",
        "taskq.tasks_slots",
        "taskq.tasks_waiting",
    }
    assert leading_queue == partial == expected, rows


def test_a_lease_is_looked_up_by_its_primary_key_among_many_running_tasks(
    broker: PostgresBroker, postgres_url: str, prefix: str
) -> None:
    """Settle, renew and release find each lease by the primary key (one row), not through
    the partial index of running tasks: under a generic plan, version 1 of the schema read
    every running task of the queue for each lease (18 s to settle 9,000 of them)."""
    n = 5_000
    broker.enqueue([EnqueueItem("default", f"t{i}", "job", b"{}") for i in range(n)], 0)
    result, _ = broker.fetch(["default"], n, 0)
    assert len(result.deliveries) == n
    d = result.deliveries[-1]
    # a lease of another fence: nothing changes, so each statement can run again
    other = f"ARRAY['default'], ARRAY['{d.id}'], ARRAY[{d.fence + 1}]"
    for sql in (
        f"SELECT * FROM taskq.renew('{prefix}', 0, 1000, {other}, ARRAY[NULL::bytea])",
        f"SELECT taskq.release('{prefix}', 0, '', '', 5, {other})",
        f"SELECT taskq.settle('{prefix}', 0, {other}, "
        "ARRAY['ok'], ARRAY['job'], ARRAY['\\x7b7d'::bytea], ARRAY[0::bigint], "
        "ARRAY[NULL::bytea], 1000, ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::bigint[])",
    ):
        found = plans(postgres_url, sql)
        assert found, "auto_explain reported nothing"
        lookups = [p for p in found if "on tasks" in p]
        assert lookups, "\n\n".join(found)
        assert not any("tasks_timed" in p for p in lookups), "\n\n".join(found)
        removed = [int(x) for p in found for x in re.findall(r"Rows Removed by Filter: (\d+)", p)]
        assert max(removed, default=0) < 10, "\n\n".join(found)
    # and a settle that holds its lease: every write reaches its row by address
    held = f"ARRAY['default'], ARRAY['{d.id}'], ARRAY[{d.fence}]"
    found = plans(
        postgres_url,
        f"SELECT taskq.settle('{prefix}', 0, {held}, ARRAY['ok'], ARRAY['job'], "
        "ARRAY['\\x7b7d'::bytea], ARRAY[0::bigint], ARRAY[NULL::bytea], 1000, "
        "ARRAY[]::text[], ARRAY[]::text[], ARRAY[]::bigint[])",
        repeat=1,  # a generic plan from the first run (forced)
    )
    assert any("Delete on tasks" in p for p in found), "\n\n".join(found)
    assert not any(re.search(r"Seq Scan on tasks", p) for p in found), "\n\n".join(found)
    state = broker.get("default", d.id)
    assert state is None or state.message is None  # settled: its result kept, the task gone


def test_the_channel_names_of_python_and_sql_agree(
    broker: PostgresBroker, postgres_url: str, prefix: str
) -> None:
    """Workers LISTEN on names computed in Python; the SQL functions NOTIFY on names
    computed by ``channel()``: one spelling, or no worker would ever wake."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for kind in ("wake", "done"):
            row = conn.execute("SELECT taskq.channel(%s, %s)", (prefix, kind)).fetchone()
            assert row == (broker.channel(kind),)


def test_fold_plans_with_sequential_scans_allowed_though_fetch_forbids_them(
    postgres_url: str,
) -> None:
    """``fetch`` runs with enable_seqscan off (schema version 3), and ``fold``, which a fetch
    calls now and then, used to inherit it: its deletes went through indexes to rows mostly
    dead, at random, and that fetch took 100 ms and more (one pick-up in twenty: p95 143 ms
    in benchmarks/pg_run.py --full, 4.2 ms with fold's own setting). Its own setting wins
    over the caller's: a fold called from a session with it off still plans with it on."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        config = conn.execute(
            "SELECT p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'taskq' AND p.proname = %s",
            ("fold",),
        ).fetchone()
        assert config is not None
        assert "enable_seqscan=on" in (config[0] or []), config
        fetch = conn.execute(
            "SELECT p.proconfig FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'taskq' AND p.proname = %s",
            ("fetch",),
        ).fetchone()
        assert fetch is not None
        assert "enable_seqscan=off" in (fetch[0] or []), fetch
