"""``python manage.py taskq_worker``: one worker process of the project's TaskQueue."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import autodiscover_modules

from taskq_core.wsgi import run_worker
from taskq_django.conf import get_taskqueue


class Command(BaseCommand):
    help = (
        "Run one taskq worker process over settings.TASKQ's TaskQueue, with the tasks of "
        "every installed app's tasks module (SIGTERM: finish running tasks, then exit)."
    )
    requires_system_checks = "__all__"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--queues", "-Q", help="Comma-separated queues, highest first.")
        parser.add_argument("--concurrency", "-c", type=int, help="Tasks at once.")
        parser.add_argument(
            "--burst", action="store_true", help="Exit once there is nothing left to run."
        )
        parser.add_argument(
            "--log-level",
            default="INFO",
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        )

    def handle(self, *args: Any, **options: Any) -> None:
        concurrency = options["concurrency"]
        if concurrency is not None and concurrency < 1:
            raise CommandError("--concurrency must be at least 1", returncode=2)
        tq = get_taskqueue()
        # register the tasks defined in each installed app's tasks module (as Django's
        # admin discovers admin modules); TASKQ["IMPORTS"] names any others
        autodiscover_modules("tasks")
        run_worker(
            tq,
            queues=options["queues"],
            concurrency=concurrency,
            burst=options["burst"],
            log_level=options["log_level"],
        )
