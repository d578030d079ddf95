"""``taskq health``: readiness, or the full health report, as an exit code.

Made for container health checks (Docker ``HEALTHCHECK``, a Kubernetes ``exec`` probe), which
read only the exit code: 0 healthy, 1 not. The check is the one the HTTP routes serve
(:mod:`taskq_core.observability.health`): by default readiness (``/health/ready``: the broker
answers within ``monitoring.health_timeout``); ``--full`` the whole report (``/health``),
which fails only when it is *unhealthy*: a degraded cluster (no worker yet, a backlog) must
not get a container restarted.
"""

from __future__ import annotations

from typing import Any

import click

from ..observability import health as health_report
from .common import FAILURE, common_options, emit_json, get_app


def _summary(report: dict[str, Any]) -> str:
    """One line of the full report: the status, then each component that is not healthy."""
    notes = []
    for name, part in report["components"].items():
        if part.get("status") in ("healthy", "not_configured"):
            continue
        why = part.get("detail") or part.get("error") or "; ".join(part.get("warnings") or [])
        notes.append(f"{name} {part['status']}" + (f" ({why})" if why else ""))
    return str(report["status"]) + (": " + "; ".join(notes) if notes else "")


@click.command()
@common_options
@click.option(
    "--full",
    is_flag=True,
    help="The full report (broker, workers, scheduler, backlog); exit 1 only when unhealthy.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def health(full: bool, as_json: bool) -> None:
    """Exit 0 when the broker answers (readiness), else 1; for container health checks."""
    app = get_app()
    if full:
        report = health_report.check(app)
        passed = report["status"] != "unhealthy"
        line = _summary(report)
    else:
        report = health_report.ready(app)
        passed = report["status"] == "ready"
        line = (
            f"ready (broker round trip {report['rtt_ms']} ms)"
            if passed
            else f"not ready: {report['error']}"
        )
    if as_json:
        emit_json(report)
    else:
        click.echo(line)
    if not passed:
        click.get_current_context().exit(FAILURE)
