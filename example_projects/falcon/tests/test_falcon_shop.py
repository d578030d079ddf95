"""The shop's tests, written with taskq's test kit: what a request enqueues, then what the
worker makes of it, without Redis or a worker process. Both flavours: the WSGI app through
``falcon.testing.TestClient`` (the blocking ``drain()``), the ASGI app through
``falcon.testing.ASGIConductor`` in the test's own loop (``drain_async()``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from falcon import testing
from falcon_shop import asgi, wsgi
from falcon_shop.tasks import charge_order, send_confirmation

from taskq_core import TaskQueue
from taskq_core.testing import Drainer, assert_enqueued, assert_not_enqueued

ITEMS = [{"sku": "tea", "qty": 2, "price_cents": 450}]
ORDER = {"email": "ada@example.com", "items": ITEMS}


@pytest.fixture
def client(taskq_app: TaskQueue) -> testing.TestClient:
    # taskq_app first: the shop's TaskQueue is on its test broker before a request comes
    return testing.TestClient(wsgi.app)


@pytest.fixture
async def conductor(taskq_app: TaskQueue) -> AsyncIterator[testing.ASGIConductor]:
    async with testing.ASGIConductor(asgi.app) as conductor:  # runs the app's lifespan
        yield conductor


def test_an_order_enqueues_its_charge(client: testing.TestClient) -> None:
    placed = client.simulate_post("/orders", json=ORDER)
    assert placed.status_code == 202, placed.text
    order: dict[str, Any] = placed.json
    (charge,) = assert_enqueued(
        charge_order, args=(order["order_id"], "ada@example.com", ITEMS), queue="high", count=1
    )
    assert charge.id == order["task_id"]
    assert_not_enqueued(send_confirmation)  # the charge sends it, once it has run


def test_a_refused_order_enqueues_nothing(client: testing.TestClient) -> None:
    refused = client.simulate_post("/orders", json={"email": "ada@example.com", "items": []})
    assert refused.status_code == 400
    assert_not_enqueued(charge_order)


def test_the_worker_charges_then_confirms(
    client: testing.TestClient, taskq_worker: Drainer
) -> None:
    placed = client.simulate_post("/orders", json=ORDER, headers={"X-Request-ID": "order-1"})
    assert placed.status_code == 202, placed.text
    order: dict[str, Any] = placed.json
    ran = taskq_worker.drain()
    assert [r.name for r in ran] == [charge_order.name, send_confirmation.name]
    assert ran[0].result["total_cents"] == 900
    assert ran[0].result["request_id"] == "order-1"
    assert ran[1].result == f"sent to ada@example.com: order {order['order_id']}, 9.00 EUR"
    assert client.simulate_get(order["status_url"]).json["status"] == "succeeded"


async def test_the_asgi_app_charges_then_confirms(
    conductor: testing.ASGIConductor, taskq_worker: Drainer
) -> None:
    # the ASGI app runs in this test's event loop: drain in it too, with drain_async()
    placed = await conductor.simulate_post(
        "/orders", json=ORDER, headers={"X-Request-ID": "order-2"}
    )
    assert placed.status_code == 202, placed.text
    order: dict[str, Any] = placed.json
    assert_enqueued(charge_order, queue="high", count=1)
    ran = await taskq_worker.drain_async()
    assert [r.name for r in ran] == [charge_order.name, send_confirmation.name]
    assert ran[0].result["request_id"] == "order-2"
    status = await conductor.simulate_get(order["status_url"])
    assert status.json["status"] == "succeeded"
