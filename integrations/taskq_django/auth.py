"""Ready-made ``AUTH`` callables for ``settings.TASKQ``."""

from __future__ import annotations

from taskq_core.http import Request


def is_staff(request: Request) -> bool:
    """Admit active staff users (needs ``AuthenticationMiddleware``): ``"AUTH":
    "taskq_django.auth.is_staff"``. Such cookie-authenticated requests go through Django's
    CSRF check before they reach a route that changes state."""
    user = getattr(request.native, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)
