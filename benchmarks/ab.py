"""taskq's processing throughput, before and after a change: two revisions, interleaved.

``python benchmarks/ab.py [--a REV|DIR] [--b REV|DIR] [--variant async|sync] [--rounds N]``

Each side is a tree of its own: a git revision is exported (``git archive``) into a
temporary directory, a directory is used as it is; the default B is this working tree,
uncommitted changes included. Each measurement is ``benchmarks/side.py taskq throughput``
of that side's tree, run with that tree first on ``PYTHONPATH`` (side.py puts its own tree
there for the worker too), so the producer and the worker import that side's
``taskq_core``; ``--dry-run`` prints where each side's ``taskq_core`` comes from.

The machine is shared and noisy: the sides alternate A B B A A B ..., so that drift from
one minute to the next falls on both, and the ratio B/A is reported per pair of
neighbours (its min–max is the spread) besides the ratio of the medians. The result goes
to ``benchmarks/results/<name>.json`` and a markdown table is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
RESULTS = ROOT / "benchmarks" / "results"
#: a database of its own, not one of run.py's (7 to 15): both can run on one machine
DEFAULT_REDIS = "redis://127.0.0.1:6379/6"
MARKER = "taskq-benchmarks:owner"
#: side.py's full-run size for taskq (run.FULL["throughput"]): 3 windows of 20,000 tasks
PARAMS = {"n": 20000, "cap": 10, "boot_timeout": 90, "windows": 3}


def order(rounds: int) -> list[str]:
    """A B B A A B B A ...: each side goes first in half the pairs."""
    return [side for k in range(rounds) for side in (("A", "B") if k % 2 == 0 else ("B", "A"))]


@contextlib.contextmanager
def tree(spec: str) -> Iterator[tuple[Path, str]]:
    """``spec`` as a directory: itself if it is one, else that git revision exported to a
    temporary directory (removed afterwards). Yields the directory and a label."""
    path = Path(spec)
    if path.is_dir():
        yield path.resolve(), str(path.resolve())
        return
    rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", spec],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix=f"taskq-ab-{rev}-") as tmp:
        archive = subprocess.Popen(
            ["git", "-C", str(ROOT), "archive", spec], stdout=subprocess.PIPE
        )
        subprocess.run(["tar", "-x", "-C", tmp], stdin=archive.stdout, check=True)
        if archive.wait() != 0:
            raise SystemExit(f"git archive {spec} failed")
        yield Path(tmp), f"{spec} ({rev})"


def env_for(side_tree: Path, url: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(side_tree),
        "BENCH_REDIS_URL": url,
        "BENCH_PROBE_KEY": "bench-probe:ab",
    }


def where_taskq_core(side_tree: Path, url: str) -> str:
    """The ``taskq_core`` a side's processes import (the worker's console script runs this
    interpreter with the same ``PYTHONPATH``)."""
    return subprocess.run(
        [str(VENV_PY), "-c", "import taskq_core; print(taskq_core.__file__)"],
        cwd=side_tree,
        env=env_for(side_tree, url),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def measure(side_tree: Path, variant: str, url: str, timeout: float = 600) -> dict[str, Any]:
    """One run of that side's ``benchmarks/side.py taskq throughput``: its JSON result."""
    cmd = [str(VENV_PY), "-m", "benchmarks.side", "taskq", "throughput"]
    cmd += ["--variant", variant, "--params", json.dumps(PARAMS)]
    proc = subprocess.run(
        cmd,
        cwd=side_tree,
        env=env_for(side_tree, url),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH-RESULT "):
            result: dict[str, Any] = json.loads(line.removeprefix("BENCH-RESULT "))
            return result
    raise SystemExit(
        f"side.py failed in {side_tree} (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )


def claim(url: str) -> None:
    """Refuse a database that holds someone else's keys."""
    import redis

    c = redis.Redis.from_url(url)
    try:
        if c.dbsize() and not c.exists(MARKER):
            raise SystemExit(f"{url} holds {c.dbsize()} keys that are not the benchmark's")
    finally:
        c.close()


def summary(rates: dict[str, list[float]], plan: list[str]) -> dict[str, Any]:
    """Medians, the ratio of the medians, and the B/A ratio of each pair of neighbours."""
    a, b = iter(rates["A"]), iter(rates["B"])
    pairs: list[float] = []
    for k in range(0, len(plan), 2):
        got = {plan[k]: next(a if plan[k] == "A" else b)}
        got[plan[k + 1]] = next(a if plan[k + 1] == "A" else b)
        pairs.append(got["B"] / got["A"])
    med_a, med_b = statistics.median(rates["A"]), statistics.median(rates["B"])
    return {
        "median_a": med_a,
        "median_b": med_b,
        "ratio_b_over_a": med_b / med_a,
        "pair_ratios": pairs,
        "pair_ratio_median": statistics.median(pairs),
        "pair_ratio_min": min(pairs),
        "pair_ratio_max": max(pairs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", default="main", help="git revision or directory (default: main)")
    ap.add_argument("--b", default=str(ROOT), help="git revision or directory (default: here)")
    ap.add_argument("--variant", action="append", help="side.py variant: async, sync, ...")
    ap.add_argument("--rounds", type=int, default=6, help="pairs of runs per variant")
    ap.add_argument("--redis", default=DEFAULT_REDIS)
    ap.add_argument("--name", default="ab-worker-split", help="benchmarks/results/NAME.json")
    ap.add_argument("--dry-run", action="store_true", help="where each side's code comes from")
    args = ap.parse_args()
    variants = args.variant or ["async", "sync"]
    claim(args.redis)
    with tree(args.a) as (tree_a, label_a), tree(args.b) as (tree_b, label_b):
        trees = {"A": tree_a, "B": tree_b}
        origin = {side: where_taskq_core(t, args.redis) for side, t in trees.items()}
        for side, path in origin.items():
            print(f"{side}: {label_a if side == 'A' else label_b}: taskq_core from {path}")
        if args.dry_run:
            return 0
        plan = order(args.rounds)
        out: dict[str, Any] = {
            "a": label_a,
            "b": label_b,
            "taskq_core": origin,
            "params": PARAMS,
            "order": plan,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "variants": {},
        }
        for variant in variants:
            rates: dict[str, list[float]] = {"A": [], "B": []}
            for k, side in enumerate(plan):
                result = measure(trees[side], variant, args.redis)
                rates[side].append(result["throughput"])
                print(
                    f"{variant} {k + 1}/{len(plan)} {side}: {result['throughput']:,.0f} tasks/s",
                    file=sys.stderr,
                    flush=True,
                )
            out["variants"][variant] = {"rates": rates, **summary(rates, plan)}
    RESULTS.mkdir(exist_ok=True)
    written = RESULTS / f"{args.name}.json"
    written.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nA = {out['a']}, B = {out['b']}; {args.rounds} pairs, order {' '.join(plan)}\n")
    print(
        "| variant | A tasks/s (per run) | B tasks/s (per run) | median A | median B | B/A "
        "| pairs B/A min–max |"
    )
    print("|---|---|---|---|---|---|---|")
    for variant, v in out["variants"].items():
        runs_a = " ".join(f"{r:,.0f}" for r in v["rates"]["A"])
        runs_b = " ".join(f"{r:,.0f}" for r in v["rates"]["B"])
        print(
            f"| {variant} | {runs_a} | {runs_b} | {v['median_a']:,.0f} | {v['median_b']:,.0f} "
            f"| {v['ratio_b_over_a']:.3f} | {v['pair_ratio_min']:.3f}–{v['pair_ratio_max']:.3f} |"
        )
    print(f"\nwritten to {written.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
