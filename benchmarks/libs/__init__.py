"""One module per library: its tasks (imported by its worker) and a producer adapter.

Each module reads ``BENCH_REDIS_URL`` at import time, so the worker process and the
producer of one measurement talk to the same Redis database.
"""
