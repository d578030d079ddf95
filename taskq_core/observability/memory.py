"""Memory monitoring: each worker samples its resident set size (RSS) on every heartbeat
and keeps the samples of a window; the trend over that window is published with the
heartbeat, and a worker whose memory grows steadily is reported as leaking.

"Steadily" means three things at once, so that a warm-up step or a noisy but flat worker is
not called a leak: enough samples (``monitoring.leak_min_samples``), a least-squares slope
above ``monitoring.leak_mb_per_hour`` that explains most of the variation (r² >= 0.8), and a
total growth over the window of at least ``monitoring.leak_min_growth_mb``.

Recycling a worker at a memory ceiling or a task count is the supervisor's job; this module
measures and reports.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass
from typing import Any

import psutil

MB = 1024 * 1024
#: the share of the variation of RSS that the linear trend must explain to be "steady"
MIN_R2 = 0.8


def process_rss(pid: int | None = None) -> int:
    """Resident set size of a process (this one by default), in bytes."""
    return int(psutil.Process(pid or os.getpid()).memory_info().rss)


@dataclass(frozen=True, slots=True)
class LeakRule:
    """Thresholds of leak detection (from ``monitoring`` settings)."""

    min_samples: int = 10
    mb_per_hour: float = 50.0
    min_growth_mb: float = 32.0


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope of ``ys`` over ``xs`` and the r² of that line."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0:
        return 0.0, 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else 0.0
    return slope, r2


class MemoryTrend:
    """RSS samples of one worker over a sliding window, and their trend."""

    def __init__(self, window: float, rule: LeakRule, max_samples: int = 2000) -> None:
        self.window = window
        self.rule = rule
        self._samples: deque[tuple[float, int, int]] = deque(maxlen=max_samples)

    def add(self, at: float, rss: int, done: int) -> None:
        """Record RSS ``rss`` at ``at`` (seconds) after ``done`` tasks."""
        self._samples.append((at, rss, done))
        while self._samples and self._samples[0][0] < at - self.window:
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)

    def trend(self) -> dict[str, Any]:
        """The figures published with the heartbeat (JSON-safe)."""
        s = list(self._samples)
        out: dict[str, Any] = {
            "samples": len(s),
            "window_seconds": 0.0,
            "first_rss_bytes": s[0][1] if s else None,
            "peak_rss_bytes": max((x[1] for x in s), default=None),
            "growth_bytes": (s[-1][1] - s[0][1]) if s else 0,
            "slope_bytes_per_hour": None,
            "slope_bytes_per_task": None,
            "r2": None,
            "leaking": False,
        }
        if len(s) < 2:
            return out
        times = [x[0] for x in s]
        rss = [float(x[1]) for x in s]
        out["window_seconds"] = round(times[-1] - times[0], 3)
        per_second, r2 = _fit(times, rss)
        out["slope_bytes_per_hour"] = round(per_second * 3600)
        out["r2"] = round(r2, 4)
        done = [float(x[2]) for x in s]
        if done[-1] > done[0]:
            out["slope_bytes_per_task"] = round(_fit(done, rss)[0], 1)
        rule = self.rule
        out["leaking"] = bool(
            len(s) >= rule.min_samples
            and per_second * 3600 >= rule.mb_per_hour * MB
            and r2 >= MIN_R2
            and out["growth_bytes"] >= rule.min_growth_mb * MB
        )
        return out
