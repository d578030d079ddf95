"""The one interface the contract suite drives every framework through.

A client factory takes the TaskQueue and the auth callable and returns a
:class:`ContractClient` for a minimal app of its framework with taskq's routes mounted at
``/tasks``, driven through that framework's own test client. A client may also have a
``close() -> None`` method (stop the app's lifespan, close its loop): the fixture calls it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from taskq_core import TaskQueue
from taskq_core.http import AuthCallable


class ContractClient(Protocol):
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request (``body`` as is, with whatever ``content-type`` the headers
        give); return the status, the headers (names lower-case) and the body."""
        ...


ClientFactory = Callable[[TaskQueue, "AuthCallable | None"], ContractClient]


def close(client: ContractClient) -> None:
    """Call the client's ``close()`` if it has one."""
    closer = getattr(client, "close", None)
    if callable(closer):
        closer()
