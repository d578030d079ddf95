"""Stopping the worker processes a test started: SIGTERM, then the wait they need to drain,
settle and drop their heartbeats, then SIGKILL for any still there."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from typing import Any


def stop_processes(procs: Sequence[subprocess.Popen[Any]], timeout: float = 30) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
