"""taskq for aiohttp: the monitoring routes as a sub-application, and a request middleware.

::

    from aiohttp import web
    import taskq_aiohttp

    from .tasks import tq

    app = web.Application(middlewares=[taskq_aiohttp.middleware(tq, defer=True)])
    app.add_subapp("/tasks", taskq_aiohttp.create_app(tq, auth=is_admin, embedded_workers=0))

- :func:`create_app` builds the sub-application: one catch-all route forwarding every method
  and path to the core's route table (so status codes and bodies are those of every other
  framework), and a ``cleanup_ctx`` that starts ``embedded_workers`` workers in the server's
  loop (off by default: production runs ``taskq worker --app module:tq``), stops them on
  shutdown and closes the TaskQueue's asyncio Redis client. Its state sits under the typed
  keys :data:`TASKQ`, :data:`ROUTE_TABLE` and :data:`EMBEDDED`.
- :func:`middleware` gives each request a correlation id, carries it into the tasks enqueued
  while handling it, echoes it in ``X-Request-ID``, counts enqueues per route and, with
  ``defer=True``, sends those enqueues only if the handler returned a status below 400.

Installing twice is harmless: a second middleware of the same TaskQueue passes requests
through, and a second sub-application joins the embedded workers of the first.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import aiohttp.web  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_aiohttp", "aiohttp") from exc

from .app import EMBEDDED, ROUTE_TABLE, TASKQ, create_app
from .middleware import middleware

__all__ = ["EMBEDDED", "ROUTE_TABLE", "TASKQ", "create_app", "middleware"]
