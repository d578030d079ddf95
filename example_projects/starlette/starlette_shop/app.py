"""The shop's web app: ``uvicorn starlette_shop.app:app``."""

from __future__ import annotations

import hmac
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import taskq_starlette
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


async def place_order(request: Request) -> JSONResponse:
    try:
        data = await request.json()
    except ValueError:
        data = None
    if (problem := _bad_order(data)) is not None:
        return JSONResponse({"error": problem}, status_code=400)
    order_id = uuid.uuid4().hex[:12]
    handle = await charge_order.enqueue_async(order_id, data["email"], data["items"])
    return JSONResponse(
        {"order_id": order_id, "task_id": handle.id, "status_url": f"/orders/{handle.id}"},
        status_code=202,
    )


async def order_status(request: Request) -> JSONResponse:
    try:
        info = await tq.handle(request.path_params["task_id"], "high").info_async()
    except TaskNotFound:
        return JSONResponse({"error": "no such order"}, status_code=404)
    return JSONResponse({"status": info["status"], "result": info.get("result")})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    # SHOP_EMBEDDED_WORKERS=1 runs a worker inside the web process (handy in development)
    workers = int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0"))
    async with taskq_starlette.lifespan(tq, embedded_workers=workers):
        yield


app = Starlette(
    routes=[
        Route("/orders", place_order, methods=["POST"]),
        Route("/orders/{task_id}", order_status),
        *taskq_starlette.routes(tq, prefix="/tasks", auth=is_admin),
    ],
    middleware=[Middleware(taskq_starlette.TaskqMiddleware, tq=tq, defer=True)],
    lifespan=lifespan,
)
