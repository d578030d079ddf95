#!/usr/bin/env python3
"""taskq side by side with procrastinate and PgQueuer on PostgreSQL.

    python benchmarks/pg_run.py --quick --out benchmarks/results/postgres.json
    python benchmarks/pg_run.py --full --libs procrastinate,pgqueuer,taskq-redis
    python -m benchmarks.pg.doc benchmarks/results/postgres.json    # the markdown table

Libraries (``--libs``): ``taskq`` (its PostgreSQL broker, on the benchmark's database),
``procrastinate``, ``pgqueuer``, and ``taskq-redis`` (taskq on Redis database 15: the
pick-up latency the PostgreSQL broker is judged against). Each runs as its own subprocess
(``python -m benchmarks.pg.bench_<lib>``, see ``benchmarks/pg/common.py`` for the
measures) with the interpreter of ``.venv-pgpeers`` (the peers, pinned in
``benchmarks/requirements-pg-peers.txt``, and taskq installed with ``pip install -e .``),
and prints one JSON line. Every library has a schema of its own in the database
``taskq_bench`` (127.0.0.1:5432), dropped and made again before each measure.

``--runs R`` goes through the libraries R times, interleaved (a rotated order each time):
each metric is the median of the runs, every run is kept. ``--merge`` keeps the libraries
of an existing ``--out`` that this run does not measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEERS_VENV = ROOT / ".venv-pgpeers"
PEERS_PY = PEERS_VENV / "bin" / "python"
REQUIREMENTS = ROOT / "benchmarks" / "requirements-pg-peers.txt"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "postgres.json"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/taskq_bench")
REDIS_URL = "redis://127.0.0.1:6379/15"
LIBS = ["taskq", "procrastinate", "pgqueuer", "taskq-redis"]
#: the longest one library's subprocess may take
TIMEOUT = {"quick": 300, "full": 900}
SETUP = (
    "python3 -m venv .venv-pgpeers && .venv-pgpeers/bin/pip install "
    "-r benchmarks/requirements-pg-peers.txt -e ."
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def command(lib: str, mode: str) -> list[str]:
    module = "taskq" if lib.startswith("taskq") else lib
    cmd = [str(PEERS_PY), "-m", f"benchmarks.pg.bench_{module}", "--mode", mode]
    if lib == "taskq":
        cmd += ["--url", PG_URL]
    elif lib == "taskq-redis":
        cmd += ["--url", REDIS_URL]
    return cmd


def run_lib(lib: str, mode: str) -> dict[str, Any]:
    """One library's subprocess: its JSON line (``{"skipped": reason}`` when it cannot run
    here, ``{"failed": ...}`` when it broke)."""
    cmd = command(lib, mode)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_PG_URL": PG_URL}
    t = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT[mode])
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the library stops its worker
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        return {"failed": f"no result within {TIMEOUT[mode]} s", "stderr": stderr[-3000:]}
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"failed": f"exit {proc.returncode}", "stderr": stderr[-3000:]}
    result: dict[str, Any] = json.loads(lines[-1])
    result["seconds"] = round(time.monotonic() - t, 1)
    if lib == "taskq-redis":
        result["lib"] = lib
    return result


def headline(metrics: dict[str, Any]) -> str:
    keys = [k for k in metrics if k.endswith(("_per_s", "_ms")) and isinstance(metrics[k], float)]
    return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys)


def combine(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One library's runs as one result: the last run's description, each metric the
    median of the runs that measured it, every run's metrics kept under ``runs``."""
    out = dict(results[-1])
    keys = dict.fromkeys(k for r in results for k in r["metrics"])
    metrics: dict[str, Any] = {}
    for k in keys:
        values = [r["metrics"][k] for r in results if k in r["metrics"]]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        metrics[k] = statistics.median(numbers) if len(numbers) == len(values) else values[-1]
    out["metrics"] = metrics
    out["runs"] = [
        {"metrics": r["metrics"], "errors": r.get("errors", {}), "load_before": r["load_before"]}
        for r in results
    ]
    out["errors"] = {k: v for r in results for k, v in r.get("errors", {}).items()}
    out["seconds"] = sum(r.get("seconds", 0) for r in results)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group(required=True)
    size.add_argument("--quick", action="store_true", help="small N (CI's smoke run)")
    size.add_argument("--full", action="store_true", help="the sizes the doc shows")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--libs", default="taskq,procrastinate,pgqueuer,taskq-redis")
    ap.add_argument("--runs", type=int, default=1, help="interleaved runs; medians reported")
    ap.add_argument("--merge", action="store_true", help="keep --out's other libraries")
    args = ap.parse_args()
    mode = "full" if args.full else "quick"
    libs = [lib.strip() for lib in args.libs.split(",") if lib.strip()]
    unknown = sorted(set(libs) - set(LIBS))
    if unknown:
        raise SystemExit(f"unknown libraries {unknown}; known: {', '.join(LIBS)}")
    if not PEERS_PY.exists():
        raise SystemExit(f"{PEERS_VENV.relative_to(ROOT)} does not exist; make it with:\n{SETUP}")

    out: dict[str, Any] = {"results": {}, "skipped": {}, "failed": {}}
    if args.merge and args.out.exists():
        out = json.loads(args.out.read_text())
        for key in ("results", "skipped", "failed"):
            out.setdefault(key, {})
            for lib in libs:
                out[key].pop(lib, None)
    out |= {
        "mode": mode,
        "ran_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "os": platform.platform(),
        },
        "runs": args.runs,
        "postgres_url": PG_URL,
        "redis_url": REDIS_URL,
        "requirements": REQUIREMENTS.read_text().splitlines() if REQUIREMENTS.exists() else [],
    }
    runs: dict[str, list[dict[str, Any]]] = {lib: [] for lib in libs}
    for r in range(args.runs):
        # interleaved: each run goes through every library, in a rotated order, so that the
        # machine's ups and downs (2 shared cores) fall on all of them alike
        order = libs[r % len(libs) :] + libs[: r % len(libs)]
        for lib in order:
            if lib in out["skipped"] or lib in out["failed"]:
                continue
            log(f"{lib} ({mode}, run {r + 1}/{args.runs})")
            load = os.getloadavg()[0]
            result = run_lib(lib, mode)
            if "skipped" in result:
                out["skipped"][lib] = result["skipped"]
                log(f"{lib}: skipped: {result['skipped']}")
            elif "failed" in result:
                out["failed"][lib] = result
                log(f"{lib}: FAILED: {result['failed']}\n{result.get('stderr', '')[-1500:]}")
            else:
                result["load_before"] = load
                runs[lib].append(result)
                if result.get("errors"):
                    log(f"{lib}: measures that failed: {result['errors']}")
                log(f"{lib}: {headline(result['metrics'])}")
    for lib, results in runs.items():
        if results and lib not in out["failed"]:
            out["results"][lib] = combine(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    log(f"wrote {args.out}")
    if out["failed"]:
        raise SystemExit(f"failed: {', '.join(out['failed'])}")


if __name__ == "__main__":
    main()
