"""The HTTP surface, framework-neutral: one route table and one handler.

Adapters (Flask, Django, Starlette, aiohttp, Litestar, Quart, Sanic) turn their request into a
:class:`Request`, call :meth:`RouteTable.dispatch` (or ``dispatch_async`` from async code),
and turn the :class:`Response` back. No framework type crosses into this package.
"""

from __future__ import annotations

from .types import AuthCallable, Request, Response, Route

__all__ = ["AuthCallable", "Request", "Response", "Route"]
