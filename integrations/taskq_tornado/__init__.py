"""taskq for Tornado: the monitoring routes, a request handler base class, embedded workers.

::

    import tornado.web
    import taskq_tornado

    from .tasks import tq

    class Orders(taskq_tornado.TaskqRequestHandler):   # handlers that enqueue tasks
        async def post(self) -> None: ...

    app = tornado.web.Application(
        [(r"/orders", Orders), *taskq_tornado.routes(tq, prefix="/tasks", auth=is_admin)],
        taskq=tq, taskq_defer=True,                     # what TaskqRequestHandler reads
    )

    async def main() -> None:
        async with taskq_tornado.serving(tq, embedded_workers=0):
            server = app.listen(8888)
            await stop_requested.wait()                 # e.g. set by SIGTERM
            server.stop()

- :func:`routes` is one rule, ``prefix(/.*)?``, whose handler passes every method and path
  to the core's route table (so status codes and bodies are those of every other
  framework); ``request.native`` in ``auth(request)`` is Tornado's ``HTTPServerRequest``.
- :class:`TaskqRequestHandler` (Tornado has no middleware) runs each request of a handler
  derived from it inside a request scope of the application setting ``taskq``: a
  correlation id (``X-Request-ID``, else ``traceparent``, else new) carried into the tasks
  enqueued while handling it and echoed in ``X-Request-ID``, enqueues counted per handler
  and, with ``taskq_defer=True``, sent only if the response succeeded (status below 400),
  before it goes out.
- :func:`serving` starts ``embedded_workers`` workers (default 0: production runs ``taskq
  worker --app module:tq``) on the IOLoop while the server runs, then stops them and
  closes the TaskQueue's asyncio Redis client.

Installing twice is harmless: a scope of the same TaskQueue already open makes the handler
pass through, and a second ``serving`` joins the workers of the first.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import tornado.web  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_tornado", "tornado") from exc

from .handlers import TaskqHandler, TaskqRequestHandler, routes
from .serving import TaskqServing, serving

__all__ = ["TaskqHandler", "TaskqRequestHandler", "TaskqServing", "routes", "serving"]
