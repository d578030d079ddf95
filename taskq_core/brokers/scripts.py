"""The Lua scripts, loaded once from the package and addressed by SHA1."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: bytes
    sha: str


def _read(name: str) -> bytes:
    return resources.files("taskq_core").joinpath("lua", f"{name}.lua").read_bytes()


_LIB = _read("_lib")


def _load(name: str, lib: bool = True) -> Script:
    # the helpers of _lib.lua go in front: a script cannot call another one (a script that
    # uses none of them goes without: defining them costs every call)
    body = _read(name)
    shebang = b""
    if body.startswith(b"#!"):
        # Redis reads a script's flags only from its very first line, so the shebang goes
        # in front of the lib
        end = body.index(b"\n") + 1
        shebang, body = body[:end], body[end:]
    source = shebang + (_LIB if lib else b"") + body
    return Script(name, source, hashlib.sha1(source, usedforsecurity=False).hexdigest())


ENQUEUE = _load("enqueue")
ENQUEUE_ONE = _load("enqueue_one", lib=False)
FETCH = _load("fetch")
SETTLE = _load("settle")
RENEW = _load("renew")
RELEASE = _load("release")
CANCEL = _load("cancel")
DEAD_RETRY = _load("dead_retry")
DEAD_PURGE = _load("dead_purge")
ALL: tuple[Script, ...] = (
    ENQUEUE,
    ENQUEUE_ONE,
    FETCH,
    SETTLE,
    RENEW,
    RELEASE,
    CANCEL,
    DEAD_RETRY,
    DEAD_PURGE,
)
