"""The shop's tests, written with taskq's test kit: what a request enqueues, then what the
worker makes of it, without Redis or a worker process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette_shop.app import app
from starlette_shop.tasks import charge_order, send_confirmation

from taskq_core import TaskQueue
from taskq_core.testing import Drainer, assert_enqueued, assert_not_enqueued

ITEMS = [{"sku": "tea", "qty": 2, "price_cents": 450}]


@pytest.fixture
def client(taskq_app: TaskQueue) -> Iterator[TestClient]:
    # taskq_app first: the shop's TaskQueue is on its test broker before the app starts
    with TestClient(app) as client:
        yield client


def place_order(client: TestClient, **headers: str) -> dict[str, Any]:
    response = client.post(
        "/orders", json={"email": "ada@example.com", "items": ITEMS}, headers=headers
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


def test_an_order_enqueues_its_charge(client: TestClient) -> None:
    order = place_order(client)
    (charge,) = assert_enqueued(
        charge_order, args=(order["order_id"], "ada@example.com", ITEMS), queue="high", count=1
    )
    assert charge.id == order["task_id"]
    assert_not_enqueued(send_confirmation)  # the charge sends it, once it has run


def test_a_refused_order_enqueues_nothing(client: TestClient) -> None:
    response = client.post("/orders", json={"email": "ada@example.com", "items": []})
    assert 400 <= response.status_code < 500
    assert_not_enqueued(charge_order)


def test_the_worker_charges_then_confirms(client: TestClient, taskq_worker: Drainer) -> None:
    # Starlette's test client runs the app in a loop of its own: the blocking drain() fits here
    order = place_order(client, **{"X-Request-ID": "order-1"})
    ran = taskq_worker.drain()
    assert [r.name for r in ran] == [charge_order.name, send_confirmation.name]
    assert ran[0].result["total_cents"] == 900
    assert ran[0].result["request_id"] == "order-1"
    assert ran[1].result == f"sent to ada@example.com: order {order['order_id']}, 9.00 EUR"
    status = client.get(order["status_url"]).json()
    assert status["status"] == "succeeded"
