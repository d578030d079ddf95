"""Log output of ``taskq worker``: readable lines or one JSON object per line, both redacted."""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Literal

from ..observability.logs import JsonFormatter, TaskLogMiddleware
from ..redact import redact_text

if TYPE_CHECKING:
    from ..app import TaskQueue

LogFormat = Literal["console", "json"]


class RedactingFormatter(logging.Formatter):
    """``%(asctime)s LEVEL logger: message``, with URL credentials masked everywhere
    (message, arguments and traceback alike)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JSONFormatter(JsonFormatter):
    """One JSON object per line (the observability formatter: ``time``, ``level``,
    ``logger``, ``message`` or the task log fields, ``exception``), redacted."""

    def format(self, record: logging.LogRecord) -> str:
        # masking inside the JSON text keeps it valid: only URL credentials are replaced
        return redact_text(super().format(record))


def use_log_format(app: TaskQueue, fmt: str) -> None:
    """Make ``app`` (possibly built before the ``--log-format`` flag) log tasks in ``fmt``."""
    app.settings.worker.log_format = fmt  # type: ignore[assignment]
    for mw in app.middleware:
        if isinstance(mw, TaskLogMiddleware):
            mw.fmt = app.settings.worker.log_format


def configure_logging(level: str, fmt: LogFormat) -> None:
    """Send every log record to stderr in ``fmt``, at ``level`` and above."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else RedactingFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
