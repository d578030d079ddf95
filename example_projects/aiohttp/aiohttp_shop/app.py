"""The shop's web app: ``python -m aiohttp_shop`` (or ``python -m aiohttp.web
aiohttp_shop.app:create_app``)."""

from __future__ import annotations

import hmac
import os
import uuid
from typing import Any

from aiohttp import web

import taskq_aiohttp
from taskq_core import TaskNotFound
from taskq_core.http import Request as TaskqRequest

from .tasks import charge_order, tq


def is_admin(request: TaskqRequest) -> bool:
    """Retry, purge, cancel and the private read routes (results, errors, hosts) need
    ``Authorization: Bearer $SHOP_ADMIN_TOKEN``."""
    token = os.environ.get("SHOP_ADMIN_TOKEN", "")
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given, f"Bearer {token}")


def _bad_order(data: Any) -> str | None:
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


routes = web.RouteTableDef()


@routes.post("/orders")
async def place_order(request: web.Request) -> web.Response:
    try:
        data = await request.json()
    except ValueError:
        data = None
    if (problem := _bad_order(data)) is not None:
        return web.json_response({"error": problem}, status=400)
    order_id = uuid.uuid4().hex[:12]
    handle = await charge_order.enqueue_async(order_id, data["email"], data["items"])
    return web.json_response(
        {"order_id": order_id, "task_id": handle.id, "status_url": f"/orders/{handle.id}"},
        status=202,
    )


@routes.get("/orders/{task_id}")
async def order_status(request: web.Request) -> web.Response:
    try:
        info = await tq.handle(request.match_info["task_id"], "high").info_async()
    except TaskNotFound:
        return web.json_response({"error": "no such order"}, status=404)
    return web.json_response({"status": info["status"], "result": info.get("result")})


def create_app(argv: list[str] | None = None) -> web.Application:
    """The application (``argv`` is what ``python -m aiohttp.web`` passes; unused)."""
    app = web.Application(middlewares=[taskq_aiohttp.middleware(tq, defer=True)])
    app.add_routes(routes)
    # SHOP_EMBEDDED_WORKERS=1 runs a worker inside the web process (handy in development)
    workers = int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0"))
    app.add_subapp("/tasks", taskq_aiohttp.create_app(tq, auth=is_admin, embedded_workers=workers))
    return app
