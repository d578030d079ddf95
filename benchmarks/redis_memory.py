"""What Redis holds for queued tasks: the server's ``used_memory``, read the same way by
``benchmarks/payloads.py`` (taskq alone, on a server of its own) and by the ``memory``
scenario of ``benchmarks/side.py`` (every library, each in its own database).

Standard library and redis-py only: it runs in taskq's environment and in the peers' one.
"""

from __future__ import annotations

import redis


def used_memory(c: redis.Redis) -> int:
    """The server's ``used_memory`` (``INFO memory``) right after a ``MEMORY PURGE``."""
    c.memory_purge()
    return int(c.info("memory")["used_memory"])


def keys_memory(c: redis.Redis, skip: tuple[str, ...] = ()) -> tuple[int, int]:
    """(keys, bytes): the keys of ``c``'s database and the sum of their ``MEMORY USAGE``
    (every element counted: ``SAMPLES 0``), the keys named in ``skip`` left out. A check on
    ``used_memory``, which is the whole server's: this is the database's own."""
    names = [k for k in c.scan_iter(count=1000) if _text(k) not in skip]
    total = 0
    for start in range(0, len(names), 1000):
        pipe = c.pipeline(transaction=False)
        for k in names[start : start + 1000]:
            pipe.memory_usage(k, samples=0)
        total += sum(int(v or 0) for v in pipe.execute())
    return len(names), total


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
