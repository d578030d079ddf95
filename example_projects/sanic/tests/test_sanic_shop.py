"""The shop's tests, written with taskq's test kit: what a request enqueues, then what the
worker makes of it, without Redis or a worker process. Async tests (pytest-asyncio), with
sanic-testing's ASGI client, which runs the app in the test's own event loop."""

from __future__ import annotations

from typing import Any

import pytest
from sanic_shop.app import app
from sanic_shop.tasks import charge_order, send_confirmation

from taskq_core import TaskQueue
from taskq_core.testing import Drainer, assert_enqueued, assert_not_enqueued

ITEMS = [{"sku": "tea", "qty": 2, "price_cents": 450}]


@pytest.fixture
def client(taskq_app: TaskQueue) -> Any:
    # taskq_app first: the shop's TaskQueue is on its test broker before the app starts
    return app.asgi_client


async def place_order(client: Any, **headers: str) -> dict[str, Any]:
    _, response = await client.post(
        "/orders", json={"email": "ada@example.com", "items": ITEMS}, headers=headers
    )
    assert response.status == 202, response.text
    return dict(response.json)


async def test_an_order_enqueues_its_charge(client: Any) -> None:
    order = await place_order(client)
    (charge,) = assert_enqueued(
        charge_order, args=(order["order_id"], "ada@example.com", ITEMS), queue="high", count=1
    )
    assert charge.id == order["task_id"]
    assert_not_enqueued(send_confirmation)  # the charge sends it, once it has run


async def test_a_refused_order_enqueues_nothing(client: Any) -> None:
    _, response = await client.post("/orders", json={"email": "ada@example.com", "items": []})
    assert response.status == 400
    assert_not_enqueued(charge_order)


async def test_the_worker_charges_then_confirms(client: Any, taskq_worker: Drainer) -> None:
    # the app runs in this test's event loop: drain in it too, with drain_async()
    order = await place_order(client, **{"X-Request-ID": "order-1"})
    ran = await taskq_worker.drain_async()
    assert [r.name for r in ran] == [charge_order.name, send_confirmation.name]
    assert ran[0].result["total_cents"] == 900
    assert ran[0].result["request_id"] == "order-1"
    assert ran[1].result == f"sent to ada@example.com: order {order['order_id']}, 9.00 EUR"
    _, status = await client.get(order["status_url"])
    assert status.json["status"] == "succeeded"
