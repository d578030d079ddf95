"""Structured task logs: one line per task outcome, as JSON or as ``key=value`` text.

Logger ``taskq.tasks``, level INFO (WARNING for failed and dead-lettered tasks). Fields:
``event`` (``task.succeeded``, ``task.retried``, ``task.failed``, ``task.dead``), ``task_id``,
``task``, ``queue``, ``attempt``, ``duration_ms``, ``wait_ms``, ``worker``, the error's
``error_type`` and ``error`` message when it raised, ``timed_out``, and the
``correlation_id`` the task was enqueued with. Arguments appear only with
``monitoring.log_args``, results only with ``monitoring.log_results``.

Values are escaped so a log line stays one line and shows no terminal escapes: CR, LF and
other control characters (ANSI escape sequences included) become ``\\r``, ``\\n``,
``\\x1b``... Each record also carries the fields as ``record.taskq``, for handlers that
format records themselves; :class:`JsonFormatter` prints any record as one JSON object.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any, Literal

import orjson

from ..middleware import Middleware, TaskEvent
from ..redact import redact_text

if TYPE_CHECKING:
    from ..worker import Worker

log = logging.getLogger("taskq.tasks")

_EVENTS = {"ok": "task.succeeded", "retry": "task.retried", "failed": "task.failed"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_C1 = re.compile(r"[\x7f-\x9f]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}
#: longest value written to a log line (error messages, arguments)
MAX_VALUE = 2000


def escape(text: str) -> str:
    """``text`` on one line with no control characters: CR/LF/tab named, others as \\xNN."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE] + "..."


def render(fields: dict[str, Any], fmt: Literal["console", "json"]) -> str:
    """One log line from ``fields``; every value escaped (JSON escapes on its own)."""
    if fmt == "json":
        # orjson escapes C0 controls (ESC included); C1 controls (a lone CSI) it leaves raw
        text = orjson.dumps(fields, default=str).decode()
        return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    parts = []
    for key, value in fields.items():
        text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        text = escape(text)
        if not text or any(c in text for c in ' "='):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


class TaskLogMiddleware(Middleware):
    """Logs each task outcome (registered by default unless ``monitoring.task_logs`` is
    false). Costs nothing when ``taskq.tasks`` is not enabled for INFO."""

    def __init__(
        self,
        fmt: Literal["console", "json"] = "console",
        log_args: bool = False,
        log_results: bool = False,
    ):
        self.fmt = fmt
        self.log_args = log_args
        self.log_results = log_results

    def after_task(self, worker: Worker, event: TaskEvent) -> None:
        outcome = event.outcome
        level = logging.WARNING if outcome in {"failed", "dead"} else logging.INFO
        if not log.isEnabledFor(level):
            return
        m = event.message
        fields: dict[str, Any] = {
            "event": _EVENTS.get(event.outcome, "task.dead"),
            "task_id": m.id,
            "task": m.task,
            "queue": m.queue,
            "attempt": m.attempt + 1 if event.outcome != "retry" else m.attempt,
            "duration_ms": round(event.runtime * 1000, 3),
            "wait_ms": round(event.wait * 1000, 3),
            "worker": worker.id,
        }
        if event.error is not None:
            fields["error_type"] = event.error.get("type", "")
            fields["error"] = _clip(redact_text(event.error.get("message", "")))
        if event.timed_out:
            fields["timed_out"] = True
        if m.trace and m.trace.get("correlation_id"):
            fields["correlation_id"] = m.trace["correlation_id"]
        if self.log_args:
            fields["args"] = _clip(orjson.dumps(m.args, default=str).decode())
            fields["kwargs"] = _clip(orjson.dumps(m.kwargs, default=str).decode())
        if self.log_results and event.outcome == "ok":
            fields["result"] = _clip(orjson.dumps(event.result, default=str).decode())
        log.log(level, "%s", render(fields, self.fmt), extra={"taskq": fields})


class JsonFormatter(logging.Formatter):
    """Formats any log record as one JSON object: time, level, logger, message, and the
    structured ``taskq`` fields of task records merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
        }
        fields = getattr(record, "taskq", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()
