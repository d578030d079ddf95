"""The Django app: ``"taskq_django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class TaskqConfig(AppConfig):
    name = "taskq_django"
    label = "taskq"
    verbose_name = "taskq"

    def ready(self) -> None:
        # registers the system checks
        from . import checks  # noqa: F401
        from .workers import start_when_serving_process

        # embedded workers start with each process that serves (a gunicorn or uWSGI worker,
        # runserver's child), before its first request: nothing is built otherwise
        start_when_serving_process()
