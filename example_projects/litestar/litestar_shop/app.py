"""The shop's web app: ``uvicorn litestar_shop.app:app``."""

from __future__ import annotations

import hmac
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from litestar import Litestar, get, post
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath

from taskq_core import TaskNotFound
from taskq_core.http import Request as TaskqRequest
from taskq_litestar import TaskqPlugin

from .tasks import charge_order, tq


def is_admin(request: TaskqRequest) -> bool:
    """Retry, purge, cancel and the private read routes (results, errors, hosts) need
    ``Authorization: Bearer $SHOP_ADMIN_TOKEN``."""
    token = os.environ.get("SHOP_ADMIN_TOKEN", "")
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given, f"Bearer {token}")


@dataclass
class Item:
    sku: str
    qty: int
    price_cents: int


@dataclass
class Order:
    email: str
    items: list[Item] = field(default_factory=list)


@dataclass
class Placed:
    order_id: str
    task_id: str
    status_url: str


@post("/orders", status_code=202)
async def place_order(data: Order) -> Placed:
    if not data.items or any(i.qty <= 0 or i.price_cents <= 0 for i in data.items):
        raise ValidationException("items must be a non-empty list of positive qty and price")
    order_id = uuid.uuid4().hex[:12]
    items = [{"sku": i.sku, "qty": i.qty, "price_cents": i.price_cents} for i in data.items]
    handle = await charge_order.enqueue_async(order_id, data.email, items)
    return Placed(order_id=order_id, task_id=handle.id, status_url=f"/orders/{handle.id}")


@get("/orders/{task_id:str}")
async def order_status(task_id: FromPath[str]) -> dict[str, Any]:
    try:
        info = await tq.handle(task_id, "high").info_async()
    except TaskNotFound:
        raise NotFoundException("no such order") from None
    return {"status": info["status"], "result": info.get("result")}


app = Litestar(
    route_handlers=[place_order, order_status],
    plugins=[
        TaskqPlugin(
            tq,
            prefix="/tasks",
            auth=is_admin,
            defer=True,
            # SHOP_EMBEDDED_WORKERS=1 runs a worker inside the web process (development)
            embedded_workers=int(os.environ.get("SHOP_EMBEDDED_WORKERS", "0")),
        )
    ],
)
