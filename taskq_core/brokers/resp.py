"""Commands in the Redis protocol (RESP), for the broker's lean sends.

hiredis packs a whole command in C, but its per-call cost (about 2.5 us for the ten parts
of a one-task enqueue on the benchmark machine) is mostly the parts that never change: the
script's SHA, the key count and the queue's keys. A :func:`head` packs those once; each
call then packs only its own arguments with :func:`bulk`.
"""

from __future__ import annotations

from collections.abc import Sequence

import hiredis

Part = str | bytes | int | float


def bulk(value: Part) -> bytes:
    """One part of a command as a RESP bulk string."""
    if type(value) is str:
        value = value.encode()
    elif type(value) is int:
        value = b"%d" % value
    elif type(value) is not bytes:
        raise TypeError(f"a command part is str, bytes or int, not {type(value).__name__}")
    return b"$%d\r\n%b\r\n" % (len(value), value)


def head(parts: Sequence[Part], total: int) -> bytes:
    """The first ``parts`` of a command of ``total`` parts, packed; append the rest with
    :func:`bulk`."""
    return b"*%d\r\n" % total + b"".join([bulk(p) for p in parts])


def pack(command: Sequence[Part]) -> bytes:
    """A whole command (str, bytes, int and float parts), packed by hiredis."""
    packed: bytes = hiredis.pack_command(tuple(command))  # type: ignore[arg-type]
    return packed
