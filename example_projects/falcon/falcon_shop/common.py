"""What the WSGI and the ASGI app share: the admin check, order validation, settings."""

from __future__ import annotations

import hmac
import logging
import os
from typing import Any

from taskq_core.http import Request as TaskqRequest

# taskq logs its workers' and tasks' events under "taskq"; show them with the server's
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

#: SHOP_EMBEDDED_WORKERS=1 runs a worker inside the web process (handy in development)
EMBEDDED_WORKERS = int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0"))


def is_admin(request: TaskqRequest) -> bool:
    """Retry, purge, cancel and the private read routes (results, errors, hosts) need
    ``Authorization: Bearer $SHOP_ADMIN_TOKEN``."""
    token = os.environ.get("SHOP_ADMIN_TOKEN", "")
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given, f"Bearer {token}")


def bad_order(data: Any) -> str | None:
    """What is wrong with an order's JSON body, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("email"), str):
        return "send a JSON object with an email and items"
    items = data.get("items")
    if not isinstance(items, list) or not items:
        return "items must be a non-empty list"
    for item in items:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), int) and item[k] > 0 for k in ("qty", "price_cents")
        ):
            return "each item needs a positive integer qty and price_cents"
    return None
