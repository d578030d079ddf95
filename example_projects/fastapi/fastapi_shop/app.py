"""The shop's web app: ``uvicorn fastapi_shop.app:app``."""

from __future__ import annotations

import hmac
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

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


class Item(BaseModel):
    sku: str = Field(min_length=1, max_length=64)
    qty: int = Field(gt=0, le=1000)
    price_cents: int = Field(gt=0)


class Order(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=254)
    items: list[Item] = Field(min_length=1)


class Placed(BaseModel):
    order_id: str
    task_id: str
    status_url: str


class OrderStatus(BaseModel):
    status: str
    result: dict[str, Any] | None = None


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # SHOP_EMBEDDED_WORKERS=1 runs a worker inside the web process (handy in development)
    workers = int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0"))
    async with taskq_starlette.lifespan(tq, embedded_workers=workers):
        yield


app = FastAPI(title="shop", lifespan=lifespan)
app.router.routes.extend(taskq_starlette.routes(tq, prefix="/tasks", auth=is_admin))
app.add_middleware(taskq_starlette.TaskqMiddleware, tq=tq, defer=True)


@app.post("/orders", status_code=202)
async def place_order(order: Order) -> Placed:
    order_id = uuid.uuid4().hex[:12]
    items = [i.model_dump() for i in order.items]
    handle = await charge_order.enqueue_async(order_id, order.email, items)
    return Placed(order_id=order_id, task_id=handle.id, status_url=f"/orders/{handle.id}")


@app.get("/orders/{task_id}")
async def order_status(task_id: str) -> OrderStatus:
    try:
        info = await tq.handle(task_id, "high").info_async()
    except TaskNotFound:
        raise HTTPException(404, "no such order") from None
    return OrderStatus(status=info["status"], result=info.get("result"))
