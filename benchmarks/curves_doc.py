"""The section "How cost grows with the work" of ``docs/benchmarks.md``, rendered from
``benchmarks/results/curves.json`` (``benchmarks/curves.py``): a table per curve, its chart
(``docs/images/curve-<name>.png``) and the growth of each metric, as the classifier of
``benchmarks/curves_growth.py`` computed it from the points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.curves_growth import (
    FLAT,
    FLAT_DOWN,
    GOOD,
    LINEAR_SLOPE,
    MIN_LINEAR_SLOPE,
    SUPERLINEAR_SLOPE,
    describe,
)

RESULTS = Path(__file__).resolve().parent / "results" / "curves.json"


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else ("yes" if value else "no")
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _x(curve: dict[str, Any], value: Any) -> str:
    if curve.get("x_bytes") and isinstance(value, int):
        for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
            if value >= size:
                return f"{value / size:g} {unit}"
        return f"{value} B"
    return _num(value)


def curve_table(curve: dict[str, Any]) -> str:
    cols = [*curve["metrics"], *curve.get("columns", [])]
    header = [curve["x_label"], *(f"{m['label']} ({m['unit']})" if m["unit"] else m["label"]
                                  for m in cols)]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in curve["points"]:
        cells = [_x(curve, point[curve["x"]]), *(_num(point.get(m["key"])) for m in cols)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def growth_list(curve: dict[str, Any]) -> str:
    lines = []
    for m in curve["metrics"]:
        growth = curve["growth"].get(m["key"], {})
        label = growth.get("label", "n/a")
        detail = describe(growth).removeprefix(label).strip()
        lines.append(f"- {m['label']}: **{label}** {detail}".rstrip())
    return "\n".join(lines)


def section(data: dict[str, Any], images: str = "images") -> str:
    """The markdown section; ``images`` is where the charts are, relative to the doc."""
    m = data["machine"]
    parts = [
        "## How cost grows with the work\n",
        f"`python benchmarks/curves.py` (measured {data['measured_at']}, "
        f"{data['seconds'] / 60:.1f} min{', a quick run' if data.get('quick') else ''}): "
        f"taskq alone on a redis-server {m['redis']} of the run's own (loopback, no "
        f"persistence), {m['cpus']} cores shared by it, the producer and the workers; "
        f"Python {m['python']}. One run, so read the timings as rough (this machine's "
        "speed drifts); the counts (series, bytes, memory) are exact.\n",
        "The growth of each metric is computed from its points, not judged by eye "
        "(`benchmarks/curves_growth.py`): the least-squares slope of log(cost) against "
        "log(x) gives x^slope and the change it makes over the range; **flat** when that "
        f"change is between ÷{FLAT_DOWN:g} and ×{FLAT:g}, **decreasing** below; otherwise a fit "
        "of cost = a + b·ln x and of cost = a + b·x (relative errors) decide between "
        f"**logarithmic** and **linear** (the better one, if within {GOOD:.0%} of the "
        f"points, linear only from a slope of {MIN_LINEAR_SLOPE:g}; linear always from "
        f"{LINEAR_SLOPE:g}), **superlinear** "
        f"above a slope of {SUPERLINEAR_SLOPE:g}, **sublinear** (x^slope) when neither "
        "fit holds.\n",
    ]
    for name, curve in data["curves"].items():
        parts.append(f"### {curve['title']}\n")
        parts.append(curve["method"] + "\n")
        parts.append(curve_table(curve) + "\n")
        parts.append(f"![{curve['title']}]({images}/curve-{name}.png)\n")
        parts.append("Growth:\n\n" + growth_list(curve) + "\n")
        for note in curve.get("notes", []):
            parts.append(f"- {note}")
        if curve.get("notes"):
            parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def appended(text: str, results: Path | None = None) -> str:
    """``text`` (the rendered ``docs/benchmarks.md``) with the section after it, when
    ``results`` (default ``RESULTS``) exists; ``text`` as it is otherwise."""
    results = results or RESULTS
    if not results.exists():
        return text
    return text.rstrip() + "\n\n" + section(json.loads(results.read_text()))
