"""The shop's tests, written with taskq's test kit: what a request enqueues, then what the
worker makes of it, without Redis or a worker process. Async tests (pytest-asyncio): the
shop's Tornado application listens on a free loopback port in the test's own event loop and
Tornado's own HTTP client calls it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application
from tornado_shop.app import make_app
from tornado_shop.tasks import charge_order, send_confirmation

from taskq_core import TaskQueue
from taskq_core.testing import Drainer, assert_enqueued, assert_not_enqueued

ITEMS = [{"sku": "tea", "qty": 2, "price_cents": 450}]


class Shop:
    """The shop served on a free port, and a client of it."""

    def __init__(self, app: Application) -> None:
        sockets = bind_sockets(0, "127.0.0.1")
        self.server = HTTPServer(app)
        self.server.add_sockets(sockets)
        self.base = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        self.http = AsyncHTTPClient()

    async def call(self, method: str, path: str, body: Any = None, **headers: str) -> HTTPResponse:
        return await self.http.fetch(
            self.base + path,
            method=method,
            body=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json", **headers},
            raise_error=False,
        )


@pytest.fixture
async def shop(taskq_app: TaskQueue) -> AsyncIterator[Shop]:
    # taskq_app first: the shop's TaskQueue is on its test broker before a request comes
    served = Shop(make_app())
    yield served
    served.server.stop()
    await served.server.close_all_connections()


async def place_order(shop: Shop, **headers: str) -> dict[str, Any]:
    response = await shop.call(
        "POST", "/orders", {"email": "ada@example.com", "items": ITEMS}, **headers
    )
    assert response.code == 202, response.body
    return dict(json.loads(response.body))


async def test_an_order_enqueues_its_charge(shop: Shop) -> None:
    order = await place_order(shop)
    (charge,) = assert_enqueued(
        charge_order, args=(order["order_id"], "ada@example.com", ITEMS), queue="high", count=1
    )
    assert charge.id == order["task_id"]
    assert_not_enqueued(send_confirmation)  # the charge sends it, once it has run


async def test_a_refused_order_enqueues_nothing(shop: Shop) -> None:
    response = await shop.call("POST", "/orders", {"email": "ada@example.com", "items": []})
    assert response.code == 400
    assert_not_enqueued(charge_order)


async def test_the_worker_charges_then_confirms(shop: Shop, taskq_worker: Drainer) -> None:
    # the server runs in this test's event loop: drain in it too, with drain_async()
    order = await place_order(shop, **{"X-Request-ID": "order-1"})
    ran = await taskq_worker.drain_async()
    assert [r.name for r in ran] == [charge_order.name, send_confirmation.name]
    assert ran[0].result["total_cents"] == 900
    assert ran[0].result["request_id"] == "order-1"
    assert ran[1].result == f"sent to ada@example.com: order {order['order_id']}, 9.00 EUR"
    status = await shop.call("GET", order["status_url"])
    assert json.loads(status.body)["status"] == "succeeded"
