"""Ready-made ``AUTH`` callables for ``settings.TASKQ``."""

from __future__ import annotations

from taskq_core.http import Request


def is_staff(request: Request) -> bool:
    """Admit active staff users (needs ``AuthenticationMiddleware``): ``"AUTH":
    "taskq_django.auth.is_staff"``. Such a session cookie is sent by the browser on requests
    from other sites too: taskq's routes that change state refuse those (a JSON body and a
    same-site ``Origin`` are required; docs/security.md), so a forged form cannot use it."""
    user = getattr(request.native, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)
