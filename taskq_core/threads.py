"""Raising an exception inside another thread: how a sync task's soft time limit fires."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Interruptible:
    """Runs one call in a pool thread and can raise an exception inside it while it runs.

    The exception is delivered at the thread's next Python bytecode: a loop in Python stops,
    a call blocked in C code does not (the supervisor's hard timeout handles that).
    """

    __slots__ = ("_done", "_lock", "_thread_id")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread_id: int | None = None
        self._done = False

    def run(self, fn: Callable[..., T], args: Any, kwargs: Any) -> T:
        self._thread_id = threading.get_ident()
        try:
            return fn(*args, **kwargs)
        finally:
            # under the lock, so an interrupt can never land after this call has ended
            with self._lock:
                self._done = True

    def interrupt(self, exc_type: type[BaseException]) -> bool:
        """Raise ``exc_type`` in the thread if the call is still running."""
        with self._lock:
            if self._done or self._thread_id is None:
                return False
            n = ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(self._thread_id), ctypes.py_object(exc_type)
            )
            return bool(n == 1)
