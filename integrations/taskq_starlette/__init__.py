"""taskq for Starlette and FastAPI: the monitoring routes, a request middleware, a lifespan.

::

    from contextlib import asynccontextmanager

    import taskq_starlette
    from starlette.applications import Starlette
    from starlette.middleware import Middleware

    from .tasks import tq

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with taskq_starlette.lifespan(tq, embedded_workers=0):
            yield

    app = Starlette(
        routes=[*my_routes, *taskq_starlette.routes(tq, prefix="/tasks", auth=is_admin)],
        middleware=[Middleware(taskq_starlette.TaskqMiddleware, tq=tq, defer=True)],
        lifespan=lifespan,
    )

FastAPI takes the same pieces: ``FastAPI(routes=taskq_starlette.routes(tq), lifespan=...)``
(or ``app.router.routes.extend(...)``) and ``app.add_middleware(TaskqMiddleware, tq=tq)``.

- :func:`routes` forwards every method and path under the prefix to the core's route table,
  so status codes and bodies are the same as in every other framework.
- :class:`TaskqMiddleware` (pure ASGI) gives each request a correlation id, carries it into
  the tasks enqueued while handling it, echoes it in ``X-Request-ID``, counts enqueues per
  route and, with ``defer=True``, sends those enqueues only if the response succeeded
  (status below 400), in one round trip.
- :func:`lifespan` starts ``embedded_workers`` workers in the server's loop (off by default:
  production runs ``taskq worker --app module:tq``) and stops them on exit, then closes the
  TaskQueue's asyncio Redis client of that loop.

Installing twice is harmless: a second middleware layer of the same TaskQueue passes requests
through, and a second lifespan joins the workers of the first.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import starlette  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_starlette", "starlette") from exc

from .lifespan import TaskqLifespan, lifespan
from .middleware import TaskqMiddleware
from .routes import routes

__all__ = ["TaskqLifespan", "TaskqMiddleware", "lifespan", "routes"]
