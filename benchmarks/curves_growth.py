"""How a cost grows with the work: a label computed from a curve's points, never written by
hand (``benchmarks/curves.py``).

For points ``(x, y)`` with ``x > 0`` (a value ``y <= 0``, a lateness of 0 ms, is raised to
a tenth of the smallest positive one, so that logarithms exist):

1. ``slope``: the least-squares slope of ``ln y`` against ``ln x`` (``y ~ x^slope``), and
   ``change``: the growth of that fit over the curve, ``(x_max / x_min) ** slope``.
2. **flat** when ``1 / FLAT_DOWN <= change <= FLAT`` (``FLAT`` = 1.5: the trend adds less
   than half to the cost over the whole range, however wide; a noisy point moves the fit,
   not the label. ``FLAT_DOWN`` = 2: a cost that falls as the work grows is mostly the first
   points' warm-up or the machine's drift, so it takes a halving to count);
   **decreasing** when ``change < 1 / FLAT_DOWN`` (a per-task cost amortised over a batch).
3. Otherwise it grows. **superlinear** when ``slope > 1.2``. Else two fits, each by
   least squares on the relative error (weights ``1 / y``, so a 10 µs point counts as much
   as a 10 ms one): ``y = a + b ln x`` and ``y = a + b x``; their relative RMS errors
   ``err_log`` and ``err_lin``. **linear** when the linear fit is the better one and within
   ``GOOD`` (0.25, a quarter) of the points and ``slope >= 0.3`` (below that a straight
   line with a large fixed part fits a cost that barely moves over decades: 11 to 20 µs
   from 1,000 to 10,000,000 queued tasks is not "linear"), or when ``slope >= 0.8`` (``y``
   ~ ``x``: the cost's fixed part is too small to show); **logarithmic** when the
   logarithmic fit is the better one and within ``GOOD``; else **sublinear**
   (``x^slope``, ``0 < slope < 0.8``, neither fit good).

With two points only the slope is known: flat / decreasing by rule 2, else linear for
``slope >= 0.8``, superlinear above 1.2, otherwise sublinear. Every label comes with the
figures it was read from (``slope``, ``change``, ``err_log``, ``err_lin``, ``points``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

LABELS = ("flat", "logarithmic", "sublinear", "linear", "superlinear", "decreasing")
FLAT = 1.5
FLAT_DOWN = 2.0
GOOD = 0.25
LINEAR_SLOPE = 0.8
MIN_LINEAR_SLOPE = 0.3
SUPERLINEAR_SLOPE = 1.2


def _ols(xs: Sequence[float], ys: Sequence[float], ws: Sequence[float]) -> tuple[float, float]:
    """Weighted least squares ``y = a + b x``: (a, b)."""
    sw = sum(ws)
    mx = sum(w * x for w, x in zip(ws, xs, strict=True)) / sw
    my = sum(w * y for w, y in zip(ws, ys, strict=True)) / sw
    sxx = sum(w * (x - mx) ** 2 for w, x in zip(ws, xs, strict=True))
    sxy = sum(w * (x - mx) * (y - my) for w, x, y in zip(ws, xs, ys, strict=True))
    b = sxy / sxx if sxx > 0 else 0.0
    return my - b * mx, b


def _rel_rms(xs: Sequence[float], ys: Sequence[float], a: float, b: float) -> float:
    errs = [((a + b * x) - y) / y for x, y in zip(xs, ys, strict=True)]
    return math.sqrt(sum(e * e for e in errs) / len(errs))


def classify(xs: Sequence[float], ys: Sequence[float]) -> dict[str, Any]:
    """The growth of ``ys`` over ``xs`` (see the module docstring): ``{"label": ..., ...}``."""
    pairs = sorted((float(x), float(y)) for x, y in zip(xs, ys, strict=True) if x > 0)
    if len(pairs) < 2 or pairs[0][0] == pairs[-1][0]:
        return {"label": "n/a", "points": len(pairs)}
    positive = [y for _, y in pairs if y > 0]
    floor = min(positive) / 10 if positive else 1.0
    px = [x for x, _ in pairs]
    py = [y if y > 0 else floor for _, y in pairs]
    lx = [math.log(x) for x in px]
    _, slope = _ols(lx, [math.log(y) for y in py], [1.0] * len(px))
    change = (px[-1] / px[0]) ** slope
    out: dict[str, Any] = {"slope": round(slope, 3), "change": round(change, 3)}
    out["points"] = len(px)
    b_log = b_lin = 0.0
    err_log = err_lin = math.inf
    if len(px) >= 3:
        weights = [1.0 / (y * y) for y in py]
        a_log, b_log = _ols(lx, py, weights)
        a_lin, b_lin = _ols(px, py, weights)
        err_log = _rel_rms(lx, py, a_log, b_log)
        err_lin = _rel_rms(px, py, a_lin, b_lin)
        out["err_log"], out["err_lin"] = round(err_log, 3), round(err_lin, 3)
    if 1 / FLAT_DOWN <= change <= FLAT:
        label = "flat"
    elif change < 1 / FLAT_DOWN:
        label = "decreasing"
    elif slope > SUPERLINEAR_SLOPE:
        label = "superlinear"
    elif len(px) < 3:
        label = "linear" if slope >= LINEAR_SLOPE else "sublinear"
    elif slope >= LINEAR_SLOPE or (
        b_lin > 0 and err_lin <= err_log and err_lin <= GOOD and slope >= MIN_LINEAR_SLOPE
    ):
        label = "linear"
    elif b_log > 0 and err_log < err_lin and err_log <= GOOD:
        label = "logarithmic"
    else:
        label = "sublinear"
    out["label"] = label
    return {"label": out.pop("label"), **out}


def describe(growth: dict[str, Any]) -> str:
    """One phrase for a table cell: ``linear (x^0.97, ×9.1 over the range)``."""
    label = str(growth.get("label", "n/a"))
    if "slope" not in growth:
        return label
    return f"{label} (x^{growth['slope']:.2f}, ×{growth['change']:.3g} over the range)"
