"""taskq side by side with procrastinate and PgQueuer on PostgreSQL (``benchmarks/pg_run.py``).

One module per library (``bench_<lib>.py``): its tasks, its worker and its producer, run by
:func:`benchmarks.pg.common.main` as one subprocess that prints one JSON line. The peers
run in ``.venv-pgpeers`` (``benchmarks/requirements-pg-peers.txt``), into which taskq is
also installed (``pip install -e .``), so every library runs with the same interpreter.
"""
