"""taskq for Litestar: one plugin adds the monitoring routes, the request middleware and the
embedded workers' lifespan.

::

    from litestar import Litestar
    from taskq_litestar import TaskqPlugin

    from .tasks import tq

    app = Litestar(
        route_handlers=[...],
        plugins=[TaskqPlugin(tq, prefix="/tasks", auth=is_admin, defer=True)],
    )

- The routes: one catch-all handler under ``prefix`` forwarding every method and path to the
  core's route table, so status codes and bodies are those of every other framework.
- The middleware gives each request a correlation id, carries it into the tasks enqueued
  while handling it, echoes it in ``X-Request-ID``, counts enqueues per route and, with
  ``defer=True``, sends those enqueues only if the response status is below 400.
- The plugin is also a lifespan context manager: ``embedded_workers`` workers (default 0;
  production runs ``taskq worker --app module:tq``) run in the server's loop while the app
  runs, and the TaskQueue's asyncio Redis client is closed on shutdown.

Installing twice is harmless: a second plugin of the same TaskQueue leaves the app unchanged.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import litestar  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_litestar", "litestar") from exc

from .plugin import TaskqPlugin

__all__ = ["TaskqPlugin"]
