"""Task middleware: database connections are handled around a task as around a request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from django.db import close_old_connections, reset_queries

from taskq_core.message import Message
from taskq_core.middleware import Middleware


class CloseOldConnections(Middleware):
    """Close stale database connections before and after each task.

    Django does this around every request (``request_started`` / ``request_finished``); a
    worker thread that ran a task would otherwise keep its connection past
    ``CONN_MAX_AGE``, or hand the next task one the server already closed. Entered in the
    task's own thread, where Django's connections live. Async tasks are left alone: the
    ORM refuses to run in the event loop, and closing a connection there would too.
    """

    @contextlib.contextmanager
    def wrap(self, message: Message) -> Iterator[None]:
        if _in_event_loop():
            yield
            return
        reset_queries()
        close_old_connections()
        try:
            yield
        finally:
            close_old_connections()


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
