"""The message envelope: what travels through the broker for each task.

A message is a JSON object with a version field ``v``. It carries data only: the task is
looked up by name in the worker's registry, never imported from the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from .errors import PayloadTooLarge

VERSION = 1


@dataclass(slots=True)
class Message:
    """One task to run. Times are epoch milliseconds."""

    id: str
    task: str
    queue: str
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0  # executions that ended in a failure so far (retries taken)
    enqueued_at: int = 0
    due_at: int | None = None
    max_retries: int | None = None  # None: the task's own setting
    timeout: float | None = None  # None: the task's own setting
    idempotency_key: str | None = None
    trace: dict[str, str] | None = None  # W3C trace context and correlation id
    headers: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "v": VERSION,
            "id": self.id,
            "task": self.task,
            "queue": self.queue,
            "args": self.args,
            "kwargs": self.kwargs,
            "attempt": self.attempt,
            "enqueued_at": self.enqueued_at,
        }
        # optional fields are left out when unset: smaller messages, faster parsing
        if self.due_at is not None:
            d["due_at"] = self.due_at
        if self.max_retries is not None:
            d["max_retries"] = self.max_retries
        if self.timeout is not None:
            d["timeout"] = self.timeout
        if self.idempotency_key is not None:
            d["idempotency_key"] = self.idempotency_key
        if self.trace is not None:
            d["trace"] = self.trace
        if self.headers is not None:
            d["headers"] = self.headers
        return d

    def encode(self, limit: int | None = None) -> bytes:
        """The JSON bytes; raises :class:`PayloadTooLarge` past ``limit`` bytes."""
        data = orjson.dumps(self.to_dict())
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(
                f"task {self.task!r} message is {len(data)} bytes, over the limit of {limit} "
                "(settings: max_payload_bytes); pass a reference (an id, a URL) instead"
            )
        return data


class BadMessage(ValueError):
    """A message that cannot be decoded; its reason goes to the dead-letter queue."""


_REQUIRED: tuple[tuple[str, type | tuple[type, ...]], ...] = (
    ("id", str),
    ("task", str),
    ("queue", str),
    ("args", list),
    ("kwargs", dict),
    ("attempt", int),
    ("enqueued_at", int),
)


_PLAIN = 1 + len(_REQUIRED)  # "v" and the required fields


def decode(data: bytes | str, limit: int | None = None) -> Message:
    """Parse and check a message; raises :class:`BadMessage` with the reason."""
    if limit is not None and len(data) > limit:
        raise BadMessage(f"message is {len(data)} bytes, over the limit of {limit}")
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"message is not valid JSON: {exc}") from None
    if type(d) is not dict:
        raise BadMessage(f"message is a JSON {type(d).__name__}, not an object")
    if d.get("v") != VERSION:
        raise BadMessage(f"message version {d.get('v')!r} is not supported (expected {VERSION})")
    get: Callable[[str], Any] = d.get
    id_, task, queue, args = get("id"), get("task"), get("queue"), get("args")
    kwargs, attempt, enqueued_at = get("kwargs"), get("attempt"), get("enqueued_at")
    # one test for the whole envelope (every delivery decodes one); the loop below only
    # finds which field to name
    if not (
        type(id_) is str
        and type(task) is str
        and type(queue) is str
        and type(args) is list
        and type(kwargs) is dict
        and type(attempt) is int
        and type(enqueued_at) is int
    ):
        for name, kind in _REQUIRED:
            value = get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise BadMessage(f"message field {name!r} is missing or not a {kind}")
    if len(d) == _PLAIN:  # no optional field: the usual message
        return Message(id_, task, queue, args, kwargs, attempt, enqueued_at)
    return Message(
        id_,
        task,
        queue,
        args,
        kwargs,
        attempt,
        enqueued_at,
        get("due_at"),
        get("max_retries"),
        get("timeout"),
        get("idempotency_key"),
        get("trace"),
        get("headers"),
    )
