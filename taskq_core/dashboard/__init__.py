"""The dashboard: one page at ``<prefix>/dashboard``, served from the core's route table, so
every integration mounts it with the other routes (docs/dashboard.md).

The page and its two assets (``static/``: HTML, CSS and vanilla JavaScript, no library, no
build step) hold no data. The script reads the JSON routes every few seconds, with the
browser's own credentials: their auth and private-data rules apply unchanged, and a panel
whose route refuses the request says so instead. It writes every value as text (never as
HTML). Actions (retry, purge, cancel, abort) are the admin routes, offered only when
``/dashboard/session`` says the application's auth callable admits this request; the admin
routes check that again, with their cross-site protection, whatever a page offers.
"""

from __future__ import annotations

import functools
import hashlib
import html
from importlib import resources
from typing import TYPE_CHECKING

import orjson

from ..http import access
from ..http.routes import HttpError
from ..http.types import Response
from ..observability import history

if TYPE_CHECKING:
    from ..http.routes import RouteCall

#: the page's assets: name -> content type
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
#: no inline script or style, nothing from another origin, never in a frame
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_SECURITY = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


@functools.cache
def _static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


@functools.cache
def _version(name: str) -> str:
    """A short hash of an asset: its URL changes when it does, so it may be cached for good."""
    return hashlib.sha256(_static(name)).hexdigest()[:16]


def page(call: RouteCall) -> Response:
    """The HTML page, its asset URLs and the route prefix filled in (escaped)."""
    base = call.table.prefix
    filled = {
        "{{BASE}}": base,
        "{{JS}}": f"{base}/dashboard/assets/dashboard.js?v={_version('dashboard.js')}",
        "{{CSS}}": f"{base}/dashboard/assets/dashboard.css?v={_version('dashboard.css')}",
    }
    text = _static("index.html").decode()
    for mark, value in filled.items():
        text = text.replace(mark, html.escape(value, quote=True))
    headers = {"content-type": "text/html; charset=utf-8", "cache-control": "no-cache"}
    return Response(200, {**headers, **_SECURITY}, text.encode())


def asset(call: RouteCall) -> Response:
    """A page asset, cached for a year (its URL carries its hash), with an ETag."""
    name = call.params["asset"]
    content_type = ASSETS.get(name)
    if content_type is None:
        raise HttpError(404, f"no dashboard asset {name[:60]!r}")
    etag = f'"{_version(name)}"'
    headers = {
        "content-type": content_type,
        "cache-control": "public, max-age=31536000, immutable",
        "etag": etag,
        "x-content-type-options": "nosniff",
    }
    if call.request.headers.get("if-none-match", "") == etag:
        return Response(304, headers, b"")
    return Response(200, headers, _static(name))


def session(call: RouteCall) -> Response:
    """What this request may do: ``admin`` (the auth callable admits it, so the admin routes
    would), and which private route classes it may read."""
    table = call.table
    try:
        access.authorize(call.request, table.auth)
        admitted = True
    except access.Refused:
        admitted = False
    readable = {c: admitted or c in table.open for c in access.CLASSES}
    body = {"admin": admitted, "read": readable, "prefix": table.prefix}
    return Response(200, {"content-type": "application/json", "cache-control": "no-store"},
                    orjson.dumps(body))  # fmt: skip


def throughput(call: RouteCall) -> Response:
    """Per-minute counts over the last hour (observability/history.py)."""
    now_ms = int(call.app.clock.time() * 1000)
    body = history.series(call.app, now_ms)
    return Response(200, {"content-type": "application/json", "cache-control": "no-store"},
                    orjson.dumps(body))  # fmt: skip


__all__ = ["ASSETS", "CSP", "asset", "page", "session", "throughput"]
