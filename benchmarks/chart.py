"""Draws the ratio chart of a results file: ``python benchmarks/chart.py results.json out.png``.

Run by ``run.py`` with whichever environment has matplotlib (the peers' one installs it).
Left: throughput, each peer's median over taskq's (below 1: slower than taskq). Right:
pick-up latency, the same ratio (above 1: slower than taskq). Log scales; taskq is the line
at 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Patch

THROUGHPUT = [
    ("enqueue_sync", "enqueue\n(sync)"),
    ("enqueue_async", "enqueue\n(async)"),
    ("enqueue_bulk", "bulk\nenqueue"),
    ("throughput_sync", "processing\nsync tasks"),
    ("throughput_async", "processing\nasync tasks"),
]
LATENCY = [
    ("latency_p50_ms", "p50"),
    ("latency_p99_ms", "p99"),
    ("latency_idle_ms", "first after\n1 s idle"),
]


def _label(y: float) -> str:
    if y >= 100:
        return f"{y:,.0f}"
    if y >= 10:
        return f"{y:.0f}"
    return f"{y:.2g}"


def panel(
    ax: Any,
    data: dict[str, Any],
    metrics: list[tuple[str, str]],
    title: str,
    colors: dict[str, Any],
) -> None:
    """Grouped bars, one group per metric, holding only the peers that have a value."""
    ratios = data["ratios"]
    groups = [[p for p in colors if key in ratios.get(p, {})] for key, _ in metrics]
    width = 0.8 / max(1, *(len(g) for g in groups))
    values: list[float] = []
    for i, ((key, _), group) in enumerate(zip(metrics, groups, strict=True)):
        for j, peer in enumerate(group):
            y = ratios[peer][key]
            values.append(y)
            x = i + (j - (len(group) - 1) / 2) * width
            ax.bar(x, y, width * 0.95, color=colors[peer])
            ax.annotate(
                _label(y),
                (x, y),
                ha="center",
                va="bottom" if y >= 1 else "top",
                fontsize=6.5,
                rotation=90,
                xytext=(0, 2 if y >= 1 else -2),
                textcoords="offset points",
            )
    ax.axhline(1.0, color="black", linewidth=1.2)
    ax.annotate(
        "taskq = 1",
        (-0.45, 1.0),
        xytext=(0, 2),
        textcoords="offset points",
        fontsize=8,
        va="bottom",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        zorder=5,
    )
    ax.set_yscale("log")
    if values:
        # room for the labels above the tallest and below the shortest bar
        ax.set_ylim(min(0.5, *values) / 3, max(2.0, *values) * 4)
    ax.set_xlim(-0.5, len(metrics) - 0.5)
    ax.set_xticks(range(len(metrics)), [label for _, label in metrics], fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", which="major", alpha=0.3)


def main() -> None:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    data = json.loads(src.read_text())
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [5, 3]})
    cmap = plt.get_cmap("tab10")
    colors = {peer: cmap(i % 10) for i, peer in enumerate(data["ratios"])}
    panel(left, data, THROUGHPUT, "Throughput: peer ÷ taskq (below 1: slower than taskq)", colors)
    panel(right, data, LATENCY, "Pick-up latency: peer ÷ taskq (above 1: slower)", colors)
    handles = [Patch(color=c, label=peer) for peer, c in colors.items()]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(
        f"taskq vs peers, medians of {data['runs']} runs, {data['date']} "
        f"({data['machine']['cores']} cores, {data['machine']['cpu']})",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
