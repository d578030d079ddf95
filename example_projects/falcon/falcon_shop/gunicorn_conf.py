"""gunicorn settings for the WSGI app: ``gunicorn -c python:falcon_shop.gunicorn_conf ...``.

The embedded worker thread (``SHOP_EMBEDDED_WORKERS=1``) starts in each gunicorn worker
process once it has loaded the app, before it serves a request (never in the master, and
safe with ``--preload``), and stops when that process exits.
"""

from taskq_falcon import post_worker_init, worker_exit

__all__ = ["post_worker_init", "worker_exit"]
