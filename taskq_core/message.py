"""The message envelope: what travels through the broker for each task.

A message is a JSON object with a version field ``v``. It carries data only: the task is
looked up by name in the worker's registry, never imported from the message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .errors import PayloadTooLarge
from .validation import _NAME, MAX_DEPTH, MAX_QUEUE_NAME

if TYPE_CHECKING:
    from .signing import Signer

VERSION = 1
SIG_FIELD = "sig"  # the signature (signing.py); every other field is signed but one:
#: what the broker adds to a workflow step's message when it releases the step (the time,
#: the results of the steps before it: taskq_core/workflow/plan.py). Those results are
#: stored data like any task's result, written after the message was signed.
RELEASE_FIELD = "wf_in"
UNSIGNED = frozenset({SIG_FIELD, RELEASE_FIELD})


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
    #: not started by then (epoch ms), the task is not run but recorded as expired
    expires_at: int | None = None
    #: a workflow step: {"id", "step", "gen", "q" (the workflow's queues), "in" (takes
    #: the previous result), "when" (its condition), "poll" (a check re-run)}
    wf: dict[str, Any] | None = None
    #: added by the broker when the step is released: {"at" (ms), "input", "cond"}
    wf_in: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The full envelope's object (what is signed, in either stored form)."""
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
        options = self.options()
        if options:
            d.update(options)
        return d

    def options(self) -> dict[str, Any]:
        """The optional fields that are set, by their names in the full envelope (unset
        ones are left out: smaller messages, faster parsing)."""
        d: dict[str, Any] = {}
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
        if self.expires_at is not None:
            d["expires_at"] = self.expires_at
        if self.wf is not None:
            d["wf"] = self.wf
        if self.wf_in is not None:
            d[RELEASE_FIELD] = self.wf_in
        return d

    @property
    def queued_at(self) -> int:
        """When it joined its queue (ms): a workflow step when the broker released it,
        any other task when it was enqueued."""
        at = self.wf_in.get("at") if self.wf_in is not None else None
        return at if type(at) is int else self.enqueued_at

    def encode(
        self,
        limit: int | None = None,
        signer: Signer | None = None,
        compress_above: int | None = None,
        *,
        compact: bool = False,
    ) -> bytes:
        """The JSON bytes, signed by ``signer`` if given; raises :class:`PayloadTooLarge`
        past ``limit`` bytes (of JSON, before any compression). With ``compress_above``, a
        message longer than that is stored as a zstd frame when that is smaller. With
        ``compact``, the compact envelope (:data:`COMPACT`). A workflow step's message is
        neither compressed nor compact: the broker's scripts add to its JSON object when
        they release it."""
        if compact and self.wf is None:
            extra = self.options()
            if signer is not None:  # signed as the full envelope, whose "sig" it carries
                extra[SIG_FIELD] = signer.signature(self.to_dict())
            data = orjson.dumps(_compact(self, extra))
        else:
            d = self.to_dict()
            if signer is not None:
                signer.sign(d)
            data = orjson.dumps(d)
        if limit is not None and len(data) > limit:
            raise PayloadTooLarge(
                f"task {self.task!r} message is {len(data)} bytes, over the limit of {limit} "
                "(settings: max_payload_bytes); pass a reference (an id, a URL) instead"
            )
        if compress_above is not None and len(data) > compress_above and self.wf is None:
            packed = compress(data)
            if len(packed) < len(data):
                return packed
        return data


class BadMessage(ValueError):
    """A message that cannot be decoded; its reason goes to the dead-letter queue."""


#: bounds of the envelope's fields (a message is refused past them, naming the field)
MAX_ID = 200  # task ids, idempotency keys: enqueue allows 100 and 200 characters
MAX_MS = 2**53  # epoch milliseconds: past this no clock reading is (and floats lose ms)
MAX_ATTEMPT = 1_000_000
MAX_RETRIES = 1_000_000
MAX_TIMEOUT = 7 * 86_400.0  # seconds, as settings.task_timeout
MAX_TRACE_ENTRIES = 32
MAX_TRACE_KEY = 256
MAX_TRACE_VALUE = 8192  # W3C baggage is at most 8192 bytes
MAX_SIG = 256
#: every field an envelope may have; any other is refused (a message carries nothing that
#: taskq does not read, and a signature covers exactly what the worker uses). A new field
#: must be added here, and to Message.to_dict.
FIELDS = frozenset(
    {
        "v",
        "id",
        "task",
        "queue",
        "args",
        "kwargs",
        "attempt",
        "enqueued_at",
        "due_at",
        "max_retries",
        "timeout",
        "idempotency_key",
        "trace",
        "headers",
        "expires_at",
        "wf",
        RELEASE_FIELD,
        SIG_FIELD,
    }
)
_REQUIRED = ("id", "task", "queue", "args", "kwargs", "attempt", "enqueued_at")
_PLAIN = 1 + len(_REQUIRED)  # "v" and the required fields

#: The compact envelope (``message_format = "compact"``, the default): the JSON array
#: ``[2, task, args, enqueued_at, attempt, kwargs, extra]``, its last three left out from
#: the end while they are ``0``, ``{}`` and ``{}``. The id and the queue are not repeated:
#: they are those the message is stored under, which every reader has. ``extra`` holds the
#: optional fields by their names in the full envelope (``sig`` among them). A reader
#: expands it into the full envelope's object (``{"v": 1, ...}``), so both forms are
#: checked and signed as one: a signature binds the id and queue either way.
COMPACT = 2
#: the full envelope's fields that the compact one holds by position (or by its key)
_POSITIONAL = frozenset({"v", "id", "task", "queue", "args", "kwargs", "attempt", "enqueued_at"})
#: what ``extra`` may hold: a workflow step's fields never (its message is never compact)
_EXTRA = FIELDS - _POSITIONAL - {"wf", RELEASE_FIELD}


def _compact(m: Message, extra: dict[str, Any]) -> list[Any]:
    """The compact envelope of ``m`` (``extra``: its optional fields that are set)."""
    end = 7 if extra else 6 if m.kwargs else 5 if m.attempt else 4
    return [COMPACT, m.task, m.args, m.enqueued_at, m.attempt, m.kwargs, extra][:end]


def _plain_compact(a: list[Any], task_id: str, queue: str, data: bytes | str) -> Message | None:
    """The usual compact message (no optional field, not nested deep) checked in one test,
    or None for the general path to check (and to name what is wrong)."""
    n = len(a)
    if not 4 <= n <= 6 or type(a[0]) is not int or a[0] != COMPACT:
        return None
    task, args, enqueued_at = a[1], a[2], a[3]
    attempt = a[4] if n > 4 else 0
    kwargs = a[5] if n > 5 else {}
    if not _required_ok(task_id, task, queue, args, kwargs, attempt, enqueued_at) or _deep(data):
        return None
    return Message(task_id, task, queue, args, kwargs, attempt, enqueued_at)


def _required_ok(  # noqa: PLR0917 - positional: every delivery runs it
    id_: Any, task: Any, queue: Any, args: Any, kwargs: Any, attempt: Any, enqueued_at: Any
) -> bool:
    """The required fields of the usual message, checked in one test (the checks that name
    a failing field are _check_required's)."""
    return (
        type(id_) is str
        and type(task) is str
        and type(queue) is str
        and type(args) is list
        and type(kwargs) is dict
        and type(attempt) is int
        and type(enqueued_at) is int
        and 0 < len(id_) <= MAX_ID
        and 0 < len(task) <= MAX_ID
        and 0 < len(queue) <= MAX_QUEUE_NAME
        and 0 <= attempt <= MAX_ATTEMPT
        and 0 <= enqueued_at <= MAX_MS
        and (task in _NAMES_SEEN or _name_ok(task))
    )


def _deep(data: bytes | str) -> bool:
    """Whether ``data`` may nest MAX_DEPTH deep: such a message holds at least that many
    brackets; most hold fewer, and are not walked."""
    return type(data) is not bytes or data.count(b"[") + data.count(b"{") >= MAX_DEPTH


def _expand(a: list[Any], task_id: str | None, queue: str | None) -> dict[str, Any]:
    """The full envelope's object of the compact envelope ``a`` stored as ``task_id`` in
    ``queue`` (left out when not given: the unchecked readers); raises BadMessage on what is
    not a compact envelope (its fields are checked by the caller, as the full one's are)."""
    if not a or a[0] != COMPACT or type(a[0]) is not int:
        first = a[0] if a else None
        shown = repr(first) if type(first) is int else _got(first)
        raise BadMessage(f"message version {shown} is not supported (expected {VERSION} or 2)")
    if not 4 <= len(a) <= 7:
        raise BadMessage(f"compact message has {len(a)} items, not 4 to 7")
    d: dict[str, Any] = {"v": VERSION}
    if task_id is not None:
        d["id"] = task_id
    if queue is not None:
        d["queue"] = queue
    d["task"], d["args"], d["enqueued_at"] = a[1], a[2], a[3]
    d["attempt"] = a[4] if len(a) > 4 else 0
    d["kwargs"] = a[5] if len(a) > 5 else {}
    if len(a) > 6:
        extra = a[6]
        if type(extra) is not dict:
            raise _bad("extra", "an object (of optional fields)", extra)
        if not _EXTRA.issuperset(extra):
            unknown = sorted(k for k in extra if k not in _EXTRA)
            shown = ", ".join(repr(k[:40]) for k in unknown[:5])
            raise BadMessage(f"compact message has unknown optional field(s) {shown}")
        d.update(extra)
    return d


_JSON_TYPES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _got(value: Any) -> str:
    """A field's value as an error names it: its JSON type, and a scalar's value, clipped."""
    kind = _JSON_TYPES.get(type(value), type(value).__name__)
    if type(value) in (list, dict) or value is None:
        return kind
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _bad(name: str, want: str, value: Any) -> BadMessage:
    return BadMessage(f"message field {name!r} must be {want}, got {_got(value)}")


#: task names that passed the name check (most deliveries carry one of a few names)
_NAMES_SEEN: set[str] = set()


def _name_ok(task: str) -> bool:
    if not _NAME.fullmatch(task):
        return False
    if len(_NAMES_SEEN) < 4096:  # bounded: forged names must not grow it without end
        _NAMES_SEEN.add(task)
    return True


def _check_required(d: dict[str, Any]) -> None:
    """Name the first required field that is missing, of the wrong type or out of range."""
    for name in ("id", "task", "queue"):
        value = d.get(name)
        limit = MAX_QUEUE_NAME if name == "queue" else MAX_ID
        if type(value) is not str or not 1 <= len(value) <= limit:
            raise _bad(name, f"a string of 1 to {limit} characters", value)
    task = d["task"]
    if not _NAME.fullmatch(task):
        raise _bad("task", "a task name (letters, digits and _ . : -)", task)
    if type(d.get("args")) is not list:
        raise _bad("args", "an array", d.get("args"))
    if type(d.get("kwargs")) is not dict:
        raise _bad("kwargs", "an object", d.get("kwargs"))
    _check_int(d, "attempt", MAX_ATTEMPT)
    _check_int(d, "enqueued_at", MAX_MS)


def _check_int(d: dict[str, Any], name: str, limit: int) -> None:
    value = d.get(name)
    if type(value) is not int or not 0 <= value <= limit:
        raise _bad(name, f"an integer from 0 to {limit}", value)


def _check_optional(d: dict[str, Any]) -> None:
    """Check the optional fields present (null counts as absent) and refuse unknown ones."""
    if len(d) > len(FIELDS) or not FIELDS.issuperset(d):
        unknown = sorted(k for k in d if k not in FIELDS)
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise BadMessage(f"message has unknown field(s) {shown}")
    get = d.get
    if get("due_at") is not None:
        _check_int(d, "due_at", MAX_MS)
    if get("max_retries") is not None:
        _check_int(d, "max_retries", MAX_RETRIES)
    if get("expires_at") is not None:
        _check_int(d, "expires_at", MAX_MS)
    timeout = get("timeout")
    if timeout is not None and not (
        (type(timeout) is float or type(timeout) is int)
        and 0 < timeout <= MAX_TIMEOUT  # NaN and infinities fail this too
    ):
        raise _bad(
            "timeout", f"a finite number of seconds above 0, at most {MAX_TIMEOUT:g}", timeout
        )
    key = get("idempotency_key")
    if key is not None and (type(key) is not str or not 1 <= len(key) <= MAX_ID):
        raise _bad("idempotency_key", f"a string of 1 to {MAX_ID} characters", key)
    trace = get("trace")
    if trace is not None:
        _check_trace(trace)
    headers = get("headers")
    if headers is not None and type(headers) is not dict:
        raise _bad("headers", "an object", headers)
    sig = get(SIG_FIELD)
    if sig is not None and (type(sig) is not str or len(sig) > MAX_SIG):
        raise _bad(SIG_FIELD, f"a string of at most {MAX_SIG} characters", sig)
    wf = get("wf")
    if wf is not None and not _wf_ok(wf):
        raise _bad(
            "wf",
            'an object {"id", "step", "gen", "q", "in"} (a workflow step: '
            "taskq_core/workflow/plan.py)",
            wf,
        )
    wf_in = get(RELEASE_FIELD)
    if wf_in is not None and not _wf_in_ok(wf_in):
        raise _bad(RELEASE_FIELD, 'an object {"at", "input", "cond"}', wf_in)


_WF_KEYS = frozenset({"id", "step", "gen", "q", "in", "when", "poll", "kind"})


def _wf_ok(wf: Any) -> bool:
    """A workflow step's ``wf`` field as the producer writes it."""
    if type(wf) is not dict or not _WF_KEYS.issuperset(wf):
        return False
    wid, step, gen, queues = wf.get("id"), wf.get("step"), wf.get("gen"), wf.get("q")
    when, poll = wf.get("when"), wf.get("poll")
    return (
        type(wid) is str
        and 0 < len(wid) <= MAX_ID
        and type(step) is int
        and 0 <= step <= 10_000_000
        and type(gen) is int
        and 0 <= gen <= MAX_ATTEMPT
        and type(queues) is list
        and 0 < len(queues) <= 1000
        and all(type(q) is str and 0 < len(q) <= MAX_QUEUE_NAME for q in queues)
        and wf.get("in") in (0, 1)
        and (when is None or (type(when) is dict and type(when.get("test")) is str))
        and (
            poll is None
            or (
                type(poll) is dict
                and all(
                    type(poll.get(k)) in (int, float) and 0 < poll[k] <= MAX_TIMEOUT
                    for k in ("every", "max", "timeout")
                )
            )
        )
        and wf.get("kind", "task") in ("task", "predicate", "errback")
    )


def _wf_in_ok(wf_in: Any) -> bool:
    return (
        type(wf_in) is dict
        and {"at"} <= set(wf_in) <= {"at", "input", "cond"}
        and type(wf_in["at"]) is int
        and 0 <= wf_in["at"] <= MAX_MS
    )


def _trace_ok(trace: Any) -> bool:
    if type(trace) is not dict or len(trace) > MAX_TRACE_ENTRIES:
        return False
    for k, v in trace.items():
        if len(k) > MAX_TRACE_KEY or type(v) is not str or len(v) > MAX_TRACE_VALUE:
            return False
    return True


def _check_trace(trace: Any) -> None:
    want = (
        f"an object of at most {MAX_TRACE_ENTRIES} strings (keys up to {MAX_TRACE_KEY} and "
        f"values up to {MAX_TRACE_VALUE} characters)"
    )
    if type(trace) is not dict or len(trace) > MAX_TRACE_ENTRIES:
        raise _bad("trace", want, trace)
    for k, v in trace.items():
        if len(k) > MAX_TRACE_KEY or type(v) is not str or len(v) > MAX_TRACE_VALUE:
            raise BadMessage(f"message field 'trace' must be {want}, got {k[:40]!r}: {_got(v)}")


def _check_depth(d: dict[str, Any]) -> None:
    """Refuse arguments or headers nested deeper than enqueue allows (``MAX_DEPTH``): a
    retry re-encodes them, and a JSON encoder has a nesting limit of its own."""
    for name in ("args", "kwargs", "headers"):
        top = d.get(name)
        if type(top) is not list and type(top) is not dict:
            continue
        stack: list[tuple[Any, int]] = [(top, 0)]
        while stack:
            value, depth = stack.pop()
            if depth >= MAX_DEPTH:
                raise BadMessage(f"message field {name!r} is nested deeper than {MAX_DEPTH} levels")
            items = value.values() if type(value) is dict else value
            stack.extend((v, depth + 1) for v in items if type(v) is list or type(v) is dict)


def decode(
    data: bytes | str,
    limit: int | None = None,
    verify: Callable[[dict[str, Any]], None] | None = None,
    *,
    task_id: str | None = None,
    queue: str | None = None,
) -> Message:
    """Parse and check a message; raises :class:`BadMessage` naming what is wrong.

    Every field is checked (type, range, length; booleans are not integers), unknown fields
    are refused, and arguments nest at most as deep as enqueue allows. ``verify`` (a
    :meth:`~taskq_core.signing.Signer.verify`) sees the parsed object first, so a message
    it refuses is judged on that alone. ``task_id`` and ``queue``: what the message is
    stored under, which a compact envelope does not repeat (it cannot be read without).
    """
    data = stored(data, limit)
    found = _loads(data, limit)
    if type(found) is list:
        if task_id is None or queue is None:
            raise BadMessage("a compact message is read with the task id and queue it is stored as")
        if verify is None and (m := _plain_compact(found, task_id, queue, data)) is not None:
            return m
        d = _expand(found, task_id, queue)
    elif type(found) is dict:
        d = found
    else:
        raise _not_envelope(found)
    if verify is not None:
        verify(d)
    return _decode_dict(d, data)


def check_delivery(m: Message, task_id: str, queue: str) -> None:
    """Refuse a message stored under another id or queue than its own (a copy of one
    message, signed or not, cannot be run under another task's id)."""
    if m.id != task_id:
        raise BadMessage(
            f"message field 'id' is {m.id[:80]!r} but the message is stored as task "
            f"{task_id[:80]!r}"
        )
    if m.queue != queue:
        raise BadMessage(
            f"message field 'queue' is {m.queue!r} but the message is stored in queue {queue!r}"
        )


#: the first bytes of a zstd frame: a stored message that starts with them is compressed
#: JSON (``encode(compress_above=...)``); JSON never starts with them
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: the most a compressed message may hold once decompressed, when the reader has no limit
MAX_DECOMPRESSED = 64 * 1024 * 1024
ZSTD_LEVEL = 3


def compress(data: bytes) -> bytes:
    """``data`` as one zstd frame (level 3: fast, most of the gain on JSON)."""
    import zstandard  # only where compression is on, or a compressed message arrives

    return bytes(zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(data))


def stored(data: bytes | str, limit: int | None = None) -> bytes | str:
    """A stored message's JSON: a compressed one decompressed, at most ``limit`` bytes
    (a frame that would inflate past it is refused, not expanded); raises BadMessage."""
    if type(data) is not bytes or not data.startswith(ZSTD_MAGIC):
        return data
    import zstandard

    cap = limit if limit is not None else MAX_DECOMPRESSED
    try:
        size = zstandard.frame_content_size(data)
        if 0 <= size <= cap:
            # the frame says how large it is (ours always do): one call, exactly that size
            out = bytes(zstandard.ZstdDecompressor().decompress(data))
        elif size > cap:
            raise BadMessage(
                f"compressed message is over the limit of {cap} bytes once decompressed"
            )
        else:
            # no declared size: read no further than the limit
            with zstandard.ZstdDecompressor().stream_reader(data) as reader:
                out = bytes(reader.read(cap + 1))
    except zstandard.ZstdError as exc:
        raise BadMessage(f"message is compressed but does not decompress: {exc}") from None
    if len(out) > cap:
        raise BadMessage(f"compressed message is over the limit of {cap} bytes once decompressed")
    return out


def stored_dict(
    data: bytes | str | None, task_id: str | None = None, queue: str | None = None
) -> dict[str, Any]:
    """A stored message as the full envelope's object, unchecked ({} for none or for what
    is not an envelope): for the readers that only show it (handles, the CLI, the routes);
    ``task_id`` and ``queue`` as :func:`decode`'s. Raises what orjson and :func:`stored` do."""
    if not data:
        return {}
    found = orjson.loads(stored(data))
    if type(found) is list:
        try:
            return _expand(found, task_id, queue)
        except BadMessage:
            return {}
    return found if isinstance(found, dict) else {}


def _loads(data: bytes | str, limit: int | None = None) -> Any:
    """The JSON value of a stored message, unchecked; raises :class:`BadMessage`."""
    if limit is not None and len(data) > limit:
        raise BadMessage(f"message is {len(data)} bytes, over the limit of {limit}")
    data = stored(data, limit)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"message is not valid JSON: {exc}") from None


def _not_envelope(found: Any) -> BadMessage:
    kind = _JSON_TYPES.get(type(found), "a JSON value")
    return BadMessage(f"message is {kind}, not an object or array")


def _decode_dict(d: dict[str, Any], data: bytes | str) -> Message:
    """Check the object ``d`` parsed from ``data`` (see :func:`decode`)."""
    v = d.get("v")
    if type(v) is not int or v != VERSION:
        shown = repr(v) if type(v) is int else _got(v)
        raise BadMessage(f"message version {shown} is not supported (expected {VERSION})")
    get: Callable[[str], Any] = d.get
    id_, task, queue, args = get("id"), get("task"), get("queue"), get("args")
    kwargs, attempt, enqueued_at = get("kwargs"), get("attempt"), get("enqueued_at")
    # one test for the usual envelope (every delivery decodes one); _check_required only
    # finds which field to name
    if not _required_ok(id_, task, queue, args, kwargs, attempt, enqueued_at):
        _check_required(d)
    if _deep(data):
        _check_depth(d)
    if len(d) == _PLAIN:  # no optional field: the usual message
        return Message(id_, task, queue, args, kwargs, attempt, enqueued_at)
    due_at, max_retries, timeout = get("due_at"), get("max_retries"), get("timeout")
    key, trace, headers, sig = get("idempotency_key"), get("trace"), get("headers"), get(SIG_FIELD)
    expires_at, wf, wf_in = get("expires_at"), get("wf"), get(RELEASE_FIELD)
    # as above, one test; _check_optional names the field (a range test also refuses NaN)
    if not (
        FIELDS.issuperset(d)
        and (due_at is None or (type(due_at) is int and 0 <= due_at <= MAX_MS))
        and (max_retries is None or (type(max_retries) is int and 0 <= max_retries <= MAX_RETRIES))
        and (
            timeout is None
            or ((type(timeout) is float or type(timeout) is int) and 0 < timeout <= MAX_TIMEOUT)
        )
        and (key is None or (type(key) is str and 0 < len(key) <= MAX_ID))
        and (trace is None or _trace_ok(trace))
        and (headers is None or type(headers) is dict)
        and (sig is None or (type(sig) is str and len(sig) <= MAX_SIG))
        and (expires_at is None or (type(expires_at) is int and 0 <= expires_at <= MAX_MS))
        and (wf is None or _wf_ok(wf))
        and (wf_in is None or _wf_in_ok(wf_in))
    ):
        _check_optional(d)
    return Message(
        id_,
        task,
        queue,
        args,
        kwargs,
        attempt,
        enqueued_at,
        due_at,
        max_retries,
        timeout,
        key,
        trace,
        headers,
        expires_at,
        wf,
        wf_in,
    )
