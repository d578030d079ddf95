"""Contract clients for Starlette, FastAPI, aiohttp, Litestar, Quart, Sanic, Falcon (ASGI) and
Tornado, each through its own test client, each app mounting taskq's routes at ``/tasks`` and
running taskq's lifespan. The async clients share :class:`_LoopClient`."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from taskq_core import TaskQueue
from taskq_core.http import AuthCallable
from tests.contract.client import ContractClient


class _SyncTestClient:
    """Starlette's, FastAPI's and Litestar's TestClient share this (httpx-like) shape."""

    def __init__(self, client: Any) -> None:
        self._client = client
        client.__enter__()  # runs the app's lifespan

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        r = self._client.request(method, path, params=params, headers=headers, content=body or None)
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

    def close(self) -> None:
        self._client.__exit__(None, None, None)


def starlette_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    import taskq_starlette

    app = Starlette(
        routes=taskq_starlette.routes(tq, prefix="/tasks", auth=auth),
        lifespan=taskq_starlette.lifespan(tq),
    )
    return _SyncTestClient(TestClient(app, raise_server_exceptions=False))


def fastapi_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    import taskq_starlette

    app = FastAPI(lifespan=taskq_starlette.lifespan(tq))
    app.router.routes.extend(taskq_starlette.routes(tq, prefix="/tasks", auth=auth))
    return _SyncTestClient(TestClient(app, raise_server_exceptions=False))


def litestar_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    from litestar import Litestar
    from litestar.testing import TestClient

    from taskq_litestar import TaskqPlugin

    app = Litestar(plugins=[TaskqPlugin(tq, prefix="/tasks", auth=auth)])
    return _SyncTestClient(TestClient(app, raise_server_exceptions=False))


class _LoopClient(ABC):
    """Drives an async test client, on a loop of its own, from the (sync) contract tests."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()

    @abstractmethod
    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request to the app, in the loop."""

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        return self._loop.run_until_complete(self._request(method, path, params, headers, body))

    async def _stop(self) -> None:
        """Run the app's shutdown."""

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._stop())
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
        finally:
            self._loop.close()


class _AiohttpClient(_LoopClient):
    """aiohttp's TestClient is async: it runs on a loop of its own, driven request by request
    from the (sync) contract tests."""

    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        super().__init__()
        self._client: Any = self._loop.run_until_complete(self._start(tq, auth))

    @staticmethod
    async def _start(tq: TaskQueue, auth: AuthCallable | None) -> Any:
        from aiohttp import web
        from aiohttp.test_utils import TestClient, TestServer

        import taskq_aiohttp

        app = web.Application()
        app.add_subapp("/tasks", taskq_aiohttp.create_app(tq, auth=auth))
        client = TestClient(TestServer(app))
        await client.start_server()
        return client

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        # aiohttp's client adds Content-Type: application/octet-stream to a POST that sets
        # none: send exactly the headers given, as the other clients do
        kwargs: dict[str, Any] = {
            "params": params,
            "headers": headers,
            "skip_auto_headers": ["Content-Type"],
        }
        if body:
            kwargs["data"] = body
        async with self._client.request(method, path, **kwargs) as r:
            body = await r.read()
            return r.status, {k.lower(): v for k, v in r.headers.items()}, body

    async def _stop(self) -> None:
        await self._client.close()


def aiohttp_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _AiohttpClient(tq, auth)


class _QuartClient(_LoopClient):
    """Quart's test app (before_serving/after_serving run) and its test client."""

    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        from quart import Quart

        from taskq_quart import TaskQ

        super().__init__()
        app = Quart("contract_quart")
        TaskQ(app, tq, prefix="/tasks", auth=auth)
        self._app: Any = app.test_app()
        self._loop.run_until_complete(self._app.startup())
        self._client = self._app.test_client()

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        # Quart's TestClientProtocol declares json= without a default (the client has one)
        r = await self._client.open(  # type: ignore[call-arg]
            path, method=method, query_string=params, headers=headers, data=body or None
        )
        return (
            r.status_code,
            {k.lower(): v for k, v in r.headers.items()},
            await r.get_data(as_text=False),
        )

    async def _stop(self) -> None:
        await self._app.shutdown()


def quart_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _QuartClient(tq, auth)


class _SanicClient(_LoopClient):
    """The app under Sanic's own server (sanic-testing's ReusableClient: the listeners run
    once, at start and stop), over a real loopback connection."""

    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        import uuid

        import httpx
        from sanic import Sanic
        from sanic_testing.reusable import ReusableClient

        from taskq_sanic import TaskQ
        from tests.examples.shop_smoke import free_port

        super().__init__()
        # Sanic keeps a registry of apps by name: one name per app
        app = Sanic(f"contract_{uuid.uuid4().hex[:12]}")
        TaskQ(app, tq, prefix="/tasks", auth=auth)
        port = free_port()
        self._server = ReusableClient(app, port=port, loop=self._loop)
        self._server.run()
        self._http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        r = await self._http.request(
            method, path, params=params, headers=headers, content=body or None
        )
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._http.aclose())
            self._server.stop()
        finally:
            super().close()


def sanic_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _SanicClient(tq, auth)


class _FalconAsgiClient(_LoopClient):
    """Falcon's ASGIConductor (which runs the app's lifespan) over a ``falcon.asgi.App`` with
    ``taskq_falcon.install``, on a loop of its own driven request by request."""

    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        import falcon.asgi
        from falcon.testing import ASGIConductor

        import taskq_falcon

        super().__init__()
        app = falcon.asgi.App()
        taskq_falcon.install(app, tq, prefix="/tasks", auth=auth)
        self._conductor = ASGIConductor(app)
        self._loop.run_until_complete(self._conductor.__aenter__())

    async def _request(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None,
        headers: dict[str, str] | None,
        body: bytes,
    ) -> tuple[int, dict[str, str], bytes]:
        from urllib.parse import urlencode

        r = await self._conductor.simulate_request(
            method, path, query_string=urlencode(params or {}), headers=headers, body=body or None
        )
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

    async def _stop(self) -> None:
        await self._conductor.__aexit__(None, None, None)


def falcon_asgi_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _FalconAsgiClient(tq, auth)


class _TornadoClient:
    """A real Tornado server on a free port, its IOLoop in a thread of its own (inside
    ``taskq_tornado.serving``), driven over HTTP by httpx."""

    def __init__(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        import threading

        import httpx

        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, args=(tq, auth), daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the Tornado server did not start"
        self._client = httpx.Client(base_url=f"http://127.0.0.1:{self._port}", timeout=30)

    def _run(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        self._loop.run_until_complete(self._serve(tq, auth))
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()

    async def _serve(self, tq: TaskQueue, auth: AuthCallable | None) -> None:
        import tornado.web
        from tornado.httpserver import HTTPServer
        from tornado.netutil import bind_sockets

        import taskq_tornado

        app = tornado.web.Application(taskq_tornado.routes(tq, prefix="/tasks", auth=auth))
        sockets = bind_sockets(0, "127.0.0.1")
        self._port = sockets[0].getsockname()[1]
        self._stop = asyncio.Event()
        async with taskq_tornado.serving(tq):
            server = HTTPServer(app)
            server.add_sockets(sockets)
            self._ready.set()
            await self._stop.wait()
            server.stop()
            await server.close_all_connections()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        r = self._client.request(method, path, params=params, headers=headers, content=body or None)
        return r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content

    def close(self) -> None:
        self._client.close()
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)


def tornado_client(tq: TaskQueue, auth: AuthCallable | None) -> ContractClient:
    return _TornadoClient(tq, auth)
