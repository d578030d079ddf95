"""taskq for Falcon, WSGI (``falcon.App``) and ASGI (``falcon.asgi.App``) alike.

::

    import falcon            # or: import falcon.asgi; app = falcon.asgi.App()
    import taskq_falcon

    from .tasks import tq

    app = falcon.App()
    app.add_route("/orders", Orders())
    taskq_falcon.install(app, tq, auth=is_admin, defer=True, embedded_workers=0)

- a sink under ``prefix`` (default: the ``http.prefix`` setting, ``/tasks``) forwards every
  method and path to the core's route table, so status codes and bodies are those of every
  other framework; ``request.native`` in ``auth(request)`` is the Falcon request;
- :class:`TaskqMiddleware` gives each request a correlation id, carries it into the tasks
  enqueued while handling it, echoes it in ``X-Request-ID``, counts enqueues per route
  template and, with ``defer=True``, sends those enqueues only if the response succeeded
  (status below 400), before it goes out;
- ``embedded_workers`` workers (default 0: production runs ``taskq worker --app
  module:tq``). ASGI: started by the lifespan's startup event in the server's loop, stopped
  at shutdown. WSGI: a background thread, started when the process starts serving: under
  gunicorn by the :func:`post_worker_init` hook (in each worker, after the fork, never in
  the master), elsewhere by ``install(...).start_workers()``; stopped by :func:`worker_exit` or
  at interpreter exit.

Installing twice is harmless: a second middleware of the same TaskQueue passes requests
through, and a second install shares the embedded workers of the first.
"""

from __future__ import annotations

from taskq_core.errors import MissingExtra

try:
    import falcon  # noqa: F401
except ImportError as exc:
    raise MissingExtra("taskq_falcon", "falcon") from exc

from .adapter import TaskqMiddleware, install, post_worker_init, worker_exit

__all__ = ["TaskqMiddleware", "install", "post_worker_init", "worker_exit"]
