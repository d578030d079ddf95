"""The Django app: ``"taskq_django"`` in ``INSTALLED_APPS``."""

from __future__ import annotations

from django.apps import AppConfig


class TaskqConfig(AppConfig):
    name = "taskq_django"
    label = "taskq"
    verbose_name = "taskq"

    def ready(self) -> None:
        # registers the system checks; nothing is built or connected here
        from . import checks  # noqa: F401
