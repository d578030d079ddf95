"""One chart per curve of ``benchmarks/curves.py``:
``python benchmarks/curves_chart.py curves.json OUTDIR`` writes ``OUTDIR/curve-<name>.png``.

Run with whichever environment has matplotlib (``curves.py`` finds it as ``report.py`` does
for the ratio chart). One panel per unit, log-x and log-y axes, one line per metric,
labelled with the growth computed from its points. Reads only the JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter, LogLocator

PLAIN = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")


def _tick(x: int) -> str:
    for unit, size in (("Mi", 1 << 20), ("Ki", 1 << 10)):
        if x >= size and x % size == 0:
            return f"{x // size}{unit}"
    return f"{x:,}"


def draw(name: str, curve: dict[str, Any], out: Path) -> None:
    units: dict[str, list[dict[str, Any]]] = {}
    for m in curve["metrics"]:
        units.setdefault(m["unit"], []).append(m)
    fig, axes = plt.subplots(1, len(units), figsize=(5.2 * len(units), 4.2), squeeze=False)
    xs = [p[curve["x"]] for p in curve["points"]]
    for ax, (unit, metrics) in zip(axes[0], units.items(), strict=True):
        for m in metrics:
            ys = [p.get(m["key"]) for p in curve["points"]]
            pts = [(x, y) for x, y in zip(xs, ys, strict=True) if isinstance(y, (int, float))]
            growth = curve["growth"].get(m["key"], {}).get("label", "n/a")
            ax.plot(
                [x for x, _ in pts],
                [max(y, 1e-3) for _, y in pts],
                marker="o",
                label=f"{m['label']} ({growth})",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        values = [max(y, 1e-3) for line in ax.get_lines() for y in line.get_ydata()]
        if values:  # room around the lines, and ticks at 1, 2, 5 unless they span decades
            lo, hi = min(values) / 2, max(values) * 2
            ax.set_ylim(lo, hi)
            subs = (1.0,) if hi / lo > 1e4 else (1.0, 2.0, 5.0)
            ax.yaxis.set_major_locator(LogLocator(subs=subs))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(PLAIN)
            axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_xticks(xs, [_tick(x) for x in xs])
        ax.set_xlabel(curve["x_label"])
        ax.set_ylabel(unit)
        ax.grid(which="major", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(curve["title"], fontsize=10)
    fig.tight_layout()
    fig.savefig(out / f"curve-{name}.png", dpi=100)
    plt.close(fig)


def main() -> None:
    data = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for name, curve in data["curves"].items():
        draw(name, curve, out)


if __name__ == "__main__":
    main()
