"""System checks (``manage.py check``): what is wrong in ``settings.TASKQ``, by key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.checks import Warning as CheckWarning

from taskq_core import TaskQueue
from taskq_core.config import InvalidConfiguration, load
from taskq_core.errors import ConfigurationError
from taskq_core.wsgi import config_problems, host_problems

from .conf import OWN, key_name, load_object, raw_settings

MIDDLEWARE = "taskq_django.middleware.TaskqMiddleware"


@register("taskq")
def check_settings(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[CheckMessage]:
    """Validate ``settings.TASKQ`` with taskq's own settings model, without connecting."""
    try:
        raw = raw_settings()
    except ConfigurationError as exc:
        return [Error(str(exc), id="taskq.E001")]
    upper = {k.upper(): v for k, v in raw.items()}
    found: list[CheckMessage] = [
        Error(p, hint="See the TASKQ keys in docs/integrations/django.md.", id="taskq.E002")
        for p in host_problems(
            {k.lower(): upper[k] for k in ("DEFER_ENQUEUE", "EMBEDDED_WORKERS") if k in upper},
            key_name,
        )
    ]
    core = {k.lower(): v for k, v in upper.items() if k not in OWN}
    app = upper.get("APP")
    if app is not None:
        found += _check_app(app)
        if core:
            keys = ", ".join(key_name(k) for k in sorted(core))
            found.append(
                Error(
                    f"{key_name('APP')} names a TaskQueue, so {keys} would be ignored",
                    hint="Configure that TaskQueue instead, or drop APP.",
                    id="taskq.E004",
                )
            )
    else:
        try:
            load(None, core)
        except InvalidConfiguration as exc:
            found += [Error(p, id="taskq.E005") for p in config_problems(exc, key_name)]
        except ConfigurationError as exc:
            found.append(Error(str(exc), id="taskq.E005"))
    auth = upper.get("AUTH")
    if auth is not None:
        try:
            target = load_object(auth, "AUTH") if isinstance(auth, str) else auth
        except ConfigurationError as exc:
            found.append(Error(str(exc), id="taskq.E006"))
        else:
            if not callable(target):
                found.append(Error(f"{key_name('AUTH')} must be callable", id="taskq.E006"))
    uses = [k for k in ("DEFER_ENQUEUE", "EMBEDDED_WORKERS") if upper.get(k)]
    if uses and MIDDLEWARE not in getattr(settings, "MIDDLEWARE", []):
        found.append(
            CheckWarning(
                f"{', '.join(key_name(k) for k in uses)} has no effect without {MIDDLEWARE}",
                hint=f"Add {MIDDLEWARE!r} to MIDDLEWARE.",
                id="taskq.W001",
            )
        )
    return found


def _check_app(app: object) -> list[CheckMessage]:
    try:
        target = load_object(app, "APP") if isinstance(app, str) else app
    except ConfigurationError as exc:
        return [Error(str(exc), id="taskq.E003")]
    if not isinstance(target, TaskQueue):
        return [
            Error(
                f"{key_name('APP')} must name a TaskQueue, got {type(target).__name__}",
                id="taskq.E003",
            )
        ]
    return []
