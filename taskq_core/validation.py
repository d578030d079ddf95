"""Checks on everything a user hands to taskq, made before anything is written."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from .errors import InvalidName, InvalidOption, NotJSONSerializable

#: the characters of every name taskq takes (task names, queue names, task ids, idempotency
#: keys): safe in a Redis key, a URL path and a log line as they are; the HTTP path and query
#: patterns are derived from this (see :func:`name_pattern`)
NAME_CHARS = r"A-Za-z0-9_.:\-"
_NAME = re.compile(f"[{NAME_CHARS}]+")
#: a capability a worker declares and a task may require (``gpu``, ``eu-west``)
CAPABILITY_CHARS = r"A-Za-z0-9_\-"
MAX_TASK_NAME = 200
MAX_QUEUE_NAME = 64
#: capabilities a task may require (taskq_core/capabilities.py)
MAX_REQUIREMENTS = 8
MAX_TASK_ID = 100
MAX_IDEMPOTENCY_KEY = 200
MAX_DEPTH = 64
#: the furthest ahead a delay or an ETA may put a task (docs/delivery.md): a year is past any
#: real schedule, and a bound keeps due times far inside every clock and format's range
MAX_DELAY = 365 * 86_400.0
JSON_LEAVES = frozenset({str, int, bool, type(None)})  # what JSON carries as it is (not float)


def check_name(kind: str, value: object, max_len: int) -> str:
    """Return ``value`` if it is a valid name, else raise :class:`InvalidName`."""
    if not isinstance(value, str):
        raise InvalidName(f"{kind} name must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= max_len:
        raise InvalidName(f"{kind} name must be 1 to {max_len} characters, got {len(value)}")
    if not _NAME.fullmatch(value):
        raise InvalidName(f"{kind} name {value[:80]!r} may only use letters, digits and _ . : -")
    return value


def name_pattern(max_len: int) -> str:
    """The anchored regular expression (JSON Schema ``pattern``) of what :func:`check_name`
    accepts with ``max_len``: one rule for the core and the HTTP routes."""
    return f"^[{NAME_CHARS}]{{1,{max_len}}}$"


#: the ``pattern`` of a queue name and of a task id, as the HTTP routes declare them
#: (a queue name may carry requirements: ``default@eu.gpu``; its length, 1 to MAX_QUEUE_NAME,
#: is the schema's ``maxLength``)
_ROUTED = f"(@[{CAPABILITY_CHARS}]+(\\.[{CAPABILITY_CHARS}]+){{0,{MAX_REQUIREMENTS - 1}}})?"
QUEUE_NAME_PATTERN = f"^[{NAME_CHARS}]+{_ROUTED}$"
TASK_ID_PATTERN = name_pattern(MAX_TASK_ID)


def check_task_name(value: object) -> str:
    return check_name("task", value, MAX_TASK_NAME)


_CAPABILITY = re.compile(f"[{CAPABILITY_CHARS}]{{1,32}}")
#: a queue name: a base name, and for a task that requires capabilities, ``@`` and the
#: capabilities in sorted order joined by ``.`` (``default@eu.gpu``: taskq_core/capabilities.py)
_QUEUE = re.compile(f"[{NAME_CHARS}]+{_ROUTED}")


def check_capability(value: object) -> str:
    """Return ``value`` if it is a valid capability name, else raise :class:`InvalidName`."""
    if not isinstance(value, str) or not _CAPABILITY.fullmatch(value):
        raise InvalidName(f"capability {str(value)[:80]!r} must be 1 to 32 letters, digits, _ or -")
    return value


def check_queue_name(value: object) -> str:
    """The queue name ``value``, or :class:`InvalidName`: a base name, or a routed one
    (``default@eu.gpu``: at most MAX_REQUIREMENTS capabilities), returned in its one
    spelling, the capabilities sorted and each once (``default@gpu.eu`` is ``default@eu.gpu``)."""
    if isinstance(value, str) and "@" in value and 1 <= len(value) <= MAX_QUEUE_NAME:
        if not _QUEUE.fullmatch(value):
            raise InvalidName(
                f"queue name {value[:80]!r}: a queue with requirements is written "
                "<queue>@<capability>.<capability> (letters, digits, _ . : - before the @; "
                f"letters, digits, _ and - in each capability; at most {MAX_REQUIREMENTS})"
            )
        base, _, caps = value.partition("@")
        return f"{base}@{'.'.join(sorted(set(caps.split('.'))))}"
    return check_name("queue", value, MAX_QUEUE_NAME)


def check_task_id(value: object) -> str:
    return check_name("task id", value, MAX_TASK_ID)


def check_json(value: Any, path: str) -> None:
    """Raise :class:`NotJSONSerializable` naming the path of the first value JSON cannot carry.

    Accepted: ``None``, ``bool``, ``int``, finite ``float``, ``str``, lists and tuples of
    those, and dicts with ``str`` keys; at most 64 levels deep. Everything else (sets, bytes,
    datetimes, arbitrary objects, NaN, infinities) is refused rather than silently converted.
    """
    # the common cases, checked without walking: a scalar, or flat arguments (every
    # enqueue checks its args and kwargs)
    t = type(value)
    if t in JSON_LEAVES:
        return
    if (t is tuple or t is list) and all(type(v) in JSON_LEAVES for v in value):
        return
    if t is dict and not value:
        return
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        v, p, depth = stack.pop()
        t = type(v)
        if t is str or t is int or t is bool or v is None:
            continue
        if t is float:
            if math.isfinite(v):
                continue
            raise NotJSONSerializable(f"{p} is {v!r}: JSON has no NaN or infinity")
        if depth >= MAX_DEPTH:
            raise NotJSONSerializable(f"{p} is nested deeper than {MAX_DEPTH} levels")
        if t is list or t is tuple:
            stack.extend((item, f"{p}[{i}]", depth + 1) for i, item in enumerate(v))
        elif t is dict:
            for key, item in v.items():
                if type(key) is not str:
                    raise NotJSONSerializable(
                        f"{p} has a key {key!r} of type {type(key).__name__}: JSON keys are strings"
                    )
                stack.append((item, f"{p}[{json.dumps(key)}]", depth + 1))
        else:
            raise NotJSONSerializable(
                f"{p} is a {t.__name__}, which JSON cannot carry "
                "(use str, int, float, bool, None, list or dict)"
            )


def check_delay(delay: float | timedelta | None) -> float | None:
    """Seconds of delay, or ``None``; refuses negative, NaN and infinite delays."""
    return check_duration(delay, "delay")


def check_duration(
    value: object, option: str, *, zero: bool = True, kinds: str = "seconds or a timedelta"
) -> float | None:
    """Seconds (a number or a timedelta) from 0 (or above 0, without ``zero``) to 365 days,
    or ``None``; refuses NaN and infinities, naming ``option``."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidOption(f"{option} must be {kinds}, got {type(value).__name__}")
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero):
        bound = ">= 0" if zero else "> 0"
        raise InvalidOption(f"{option} must be a finite number of seconds {bound}, got {value!r}")
    if seconds > MAX_DELAY:
        raise InvalidOption(
            f"{option} must be at most 365 days ({MAX_DELAY:.0f} s), got {seconds:g} s"
        )
    return seconds


def check_due(eta: float, now: float) -> float:
    """``eta`` (epoch seconds) if it is at most :data:`MAX_DELAY` after ``now``; an ETA in
    the past is due at once."""
    if eta - now > MAX_DELAY:
        raise InvalidOption(
            f"eta must be at most 365 days ahead, got {(eta - now) / 86_400:.0f} days ahead"
        )
    return eta


def check_eta(eta: datetime | None) -> float | None:
    """Epoch seconds of an aware datetime, or ``None``; naive datetimes are refused."""
    if eta is None:
        return None
    if not isinstance(eta, datetime):
        raise InvalidOption(f"eta must be a datetime, got {type(eta).__name__}")
    if eta.tzinfo is None or eta.utcoffset() is None:
        raise InvalidOption(
            "eta must be timezone-aware (e.g. datetime.now(timezone.utc)); got a naive datetime"
        )
    return eta.timestamp()


def check_url_userinfo(url: str) -> str:
    """Refuse a ``redis://`` URL whose password holds an unencoded ``/``, ``?`` or ``#``.

    URL parsers (so redis-py) end the host part at the first of them, so such a URL would
    connect to the wrong place with part of the password: the error says to percent-encode
    them (``%2F``, ``%3F``, ``%23``; an ``@`` may stay as it is, or be ``%40``). The URL is
    not shown: its credentials cannot be told apart from its path."""
    if not url.startswith(("redis://", "rediss://")):
        return url
    parts = urlsplit(url)
    after_host = url[url.index("//") + 2 + len(parts.netloc) :]
    if "@" in after_host:
        try:
            # no host, a port that is no number (the password's start), or an @ in the
            # path (a database number) or fragment, where a URL has none
            bad = (
                parts.hostname is None
                or (parts.port is None and ":" in parts.netloc.rpartition("@")[2])
                or "@" in parts.path
                or "@" in parts.fragment
            )
        except ValueError:
            bad = True
        if bad:
            raise InvalidOption(
                "broker_url: the password (or user name) holds an unencoded '/', '?' or '#', "
                "which ends the host part of a URL early: percent-encode them as %2F, %3F "
                "and %23"
            )
    return url


def check_retries(value: object, key: str = "max_retries") -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidOption(f"{key} must be an integer >= 0, got {value!r}")
    return value


def check_timeout(value: object, key: str = "timeout") -> float | None:
    if value is None:
        return None
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidOption(f"{key} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


def check_positive(value: object, key: str) -> float:
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        raise InvalidOption(f"{key} must be a finite number >= 0, got {value!r}")
    return float(value)
