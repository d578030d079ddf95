"""The shop's periodic task, for ``taskq scheduler`` (deploy/compose.yaml and deploy/k8s run
one). Listed in ``TASKQ_IMPORTS`` there, so the worker registers the task and the scheduler
finds the schedule; the web app never imports it."""

from __future__ import annotations

from typing import Any

from .tasks import tq


@tq.task(queue="low")
def daily_sales_report() -> dict[str, Any]:
    """Compile yesterday's sales (a stand-in for a report sent to the shop's owners)."""
    return {"report": "daily sales", "orders": 0}


tq.schedule(daily_sales_report, cron="0 6 * * *", timezone="UTC")
