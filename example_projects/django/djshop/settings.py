"""Settings of the shop. Redis comes from ``TASKQ_BROKER_URL`` / ``TASKQ_KEY_PREFIX`` (read by
the TaskQueue in ``orders/tasks.py``), the SQLite file from ``SHOP_DB``."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("SHOP_SECRET_KEY", "insecure-example-key-change-me")
DEBUG = os.environ.get("SHOP_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "taskq_django",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "taskq_django.middleware.TaskqMiddleware",
]

ROOT_URLCONF = "djshop.urls"
WSGI_APPLICATION = "djshop.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SHOP_DB", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

TASKQ = {
    # the TaskQueue the tasks are declared on
    "APP": "orders.tasks:tq",
    # who may retry, purge and cancel through /tasks
    "AUTH": "djshop.auth:is_admin",
    # tasks enqueued in a transaction go when it commits; others once the response succeeded
    "DEFER_ENQUEUE": True,
    # SHOP_EMBEDDED_WORKERS=1 runs a worker inside the web process (handy in development)
    "EMBEDDED_WORKERS": int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0")),
}

# taskq's lines once, on the console: "propagate": False, or the root logger's handler
# (``manage.py taskq_worker`` sets one up) would print each line a second time. taskq masks
# credentials in its records when they are created, so any handler here gets them masked.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"taskq": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}
