"""The Grafana dashboard (``deploy/grafana/taskq-dashboard.json``) queries only what taskq exports.

Every PromQL expression of the dashboard (panel targets and template variables) is read for
the metric names it references (``taskq_...``) and the label names it uses (selectors,
``by``/``without``/``on``/``ignoring``/``group_*`` clauses, ``label_values``, and the
``{{label}}`` of a legend). Each metric must be a sample name of a real exposition (a counter
as ``..._total``, a histogram as ``..._bucket``/``..._sum``/``..._count``) and each label a
label of one of the metrics the expression queries, so a renamed metric or label in
``taskq_core/observability/prometheus.py`` fails here instead of blanking a panel.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from taskq_core import TaskQueue
from taskq_core.observability import alerts
from taskq_core.observability.prometheus import exposition

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "taskq-dashboard.json"

#: sample name -> its label names
Exported = Mapping[str, frozenset[str]]

METRIC = re.compile(r"(?<![A-Za-z0-9_:])taskq_[a-zA-Z0-9_]+")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
GRAFANA_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}")
SELECTOR = re.compile(r"\{([^{}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)", re.IGNORECASE
)
LABEL_VALUES = re.compile(r"\blabel_values\s*\((.*?),?\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")
LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Query:
    """One PromQL expression of the dashboard and where it is."""

    where: str
    expr: str
    legend: str = ""


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, the panels of collapsed rows included."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_query(variable: Mapping[str, Any]) -> str:
    """The PromQL of a query variable: a string, or the editor's ``{"query": ...}`` form."""
    query = variable.get("query", "")
    if isinstance(query, dict):
        return str(query.get("query", ""))
    return str(query)


def dashboard_queries(dashboard: Mapping[str, Any]) -> list[Query]:
    """The expressions of every panel target and every query template variable."""
    out: list[Query] = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            if target.get("expr"):
                where = f"panel {panel.get('title')!r} (target {target.get('refId')})"
                out.append(Query(where, str(target["expr"]), str(target.get("legendFormat", ""))))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            out.append(Query(f"variable {variable.get('name')!r}", variable_query(variable)))
    return out


def referenced(expr: str) -> tuple[set[str], set[str]]:
    """The ``taskq_`` metric names and the label names an expression uses.

    String literals are blanked first, so a label value (``queue="taskq_x"``) or a Grafana
    variable (``"$queue"``) is neither a metric nor a selector."""
    code = STRING.sub('""', GRAFANA_VAR.sub(r"$\1", expr))
    metrics = set(METRIC.findall(code))
    labels: set[str] = set()
    for body in SELECTOR.findall(code):
        labels.update(MATCHER.findall(body))
    for body in GROUPING.findall(code):
        labels.update(IDENT.findall(body))
    found = LABEL_VALUES.search(code)
    if found:
        labels.add(found.group(2))
    return metrics, labels


def problems(dashboard: Mapping[str, Any], exported: Exported) -> list[str]:
    """One message per unknown metric or label, naming where, the expression and the name.

    An expression with an unknown metric gets only that message: the labels of a metric
    that does not exist cannot be judged."""
    out: list[str] = []
    for q in dashboard_queries(dashboard):
        metrics, labels = referenced(q.expr)
        labels.update(LEGEND.findall(q.legend))
        if not metrics:
            out.append(f"{q.where}: expr {q.expr!r} queries no taskq metric")
        unknown = sorted(metrics - exported.keys())
        for name in unknown:
            out.append(f"{q.where}: expr {q.expr!r} queries unknown metric {name!r}")
        if unknown:
            continue  # its labels are judged once its metrics are real
        known = set().union(*(exported[name] for name in metrics))
        for label in sorted(labels - known):
            out.append(
                f"{q.where}: expr {q.expr!r} uses label {label!r}, which none of"
                f" {sorted(metrics)} has"
            )
    return out


def exported_samples(text: str) -> dict[str, frozenset[str]]:
    """Every sample name of an exposition and the label names it carries."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        assert family.samples, f"{family.name} has no sample: its labels cannot be checked"
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in out.items()}


def load() -> dict[str, Any]:
    """The dashboard as shipped."""
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture
def exported(make_app: Callable[..., TaskQueue]) -> dict[str, frozenset[str]]:
    """The samples of a populated app on Redis: successes, a failure, ready tasks left with
    no worker and the alerts that raises (so every family, ``taskq_alerts_active`` too, has
    a sample to show its labels)."""
    tq = make_app("redis")

    @tq.task(name="grafana.ok")
    def ok() -> None:
        pass

    @tq.task(name="grafana.fail", max_retries=0)
    def fail() -> None:
        raise ValueError("for the failure series")

    for _ in range(3):
        ok.enqueue()
    fail.enqueue()
    tq.worker(burst=True, handle_signals=False).run()
    ok.enqueue()  # ready with no live worker: the no_worker alert fires
    alerts.evaluate(tq, force=True)
    got = exported_samples(exposition(tq).decode())
    assert "taskq_alerts_active" in got
    return got


def test_the_dashboard_queries_only_exported_metrics_and_labels(
    exported: dict[str, frozenset[str]],
) -> None:
    dashboard = load()
    queries = dashboard_queries(dashboard)
    assert len(queries) > 20
    found = problems(dashboard, exported)
    assert not found, "\n".join(found)


def test_a_bogus_metric_added_to_the_shipped_dashboard_is_reported(
    exported: dict[str, frozenset[str]],
) -> None:
    dashboard = load()
    bogus = copy.deepcopy(dashboard)
    panel = next(p for p in bogus["panels"] if p.get("targets"))
    metric = 'sum(rate(taskq_bogus_total{queue=~"$queue"}[5m]))'
    label = 'max by (worker) (taskq_queue_depth{queue=~"$queue"})'
    panel["targets"] += [{"refId": "Y", "expr": metric}, {"refId": "Z", "expr": label}]
    found = problems(bogus, exported)
    assert len(found) == 2, found
    assert panel["title"] in found[0]
    assert repr(metric) in found[0]
    assert "unknown metric 'taskq_bogus_total'" in found[0]
    assert panel["title"] in found[1]
    assert repr(label) in found[1]
    assert "label 'worker'" in found[1]


EXPORTED: Exported = {
    "taskq_tasks_failed_total": frozenset({"queue", "task"}),
    "taskq_task_wait_seconds_bucket": frozenset({"queue", "task", "le"}),
    "taskq_task_wait_seconds_count": frozenset({"queue", "task"}),
    "taskq_queue_depth": frozenset({"queue"}),
    "taskq_alerts_active": frozenset({"rule", "severity"}),
}


def one_panel(expr: str, legend: str = "") -> dict[str, Any]:
    """A hand-made dashboard of one panel with one target."""
    return {
        "panels": [
            {
                "id": 1,
                "title": "Hand made",
                "type": "timeseries",
                "gridPos": {"h": 8, "w": 8, "x": 0, "y": 0},
                "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
            }
        ]
    }


@pytest.mark.parametrize(
    ("expr", "legend", "unknown"),
    [
        ('sum(rate(taskq_bogus_total{queue=~"$queue"}[5m]))', "", "taskq_bogus_total"),
        ("sum(rate(taskq_tasks_failed[5m]))", "", "taskq_tasks_failed"),  # no _total
        (
            "histogram_quantile(0.9, rate(taskq_task_wait_seconds[5m]))",
            "",
            "taskq_task_wait_seconds",
        ),
        ('taskq_queue_depth{worker="w1"}', "", "worker"),
        ("sum by (queue, host) (taskq_queue_depth)", "", "host"),
        ("sum(taskq_queue_depth) without (pod)", "", "pod"),
        ("max by (le) (taskq_queue_depth)", "", "le"),  # le only on a _bucket
        ("sum by (queue) (taskq_queue_depth)", "{{queue}} {{task}}", "task"),
        ("max(taskq_queue_depth) / on (job) max(taskq_alerts_active)", "", "job"),
        ("up", "", "no taskq metric"),
    ],
)
def test_the_checker_reports_unknown_names(expr: str, legend: str, unknown: str) -> None:
    found = problems(one_panel(expr, legend), EXPORTED)
    assert len(found) == 1, found
    assert "'Hand made'" in found[0]
    assert repr(expr) in found[0]
    assert unknown in found[0]


@pytest.mark.parametrize(
    "expr",
    [
        "histogram_quantile(0.95, sum by (le, queue)"
        ' (rate(taskq_task_wait_seconds_bucket{queue=~"$queue"}[5m])))',
        "sum by (queue) (rate(taskq_tasks_failed_total"
        '{queue="taskq_not_a_metric", task=~"${task}"}[$__rate_interval]))',
        "sum(taskq_task_wait_seconds_count) without (task)",
        "sum(max by (rule, severity) (taskq_alerts_active)) or vector(0)",
    ],
)
def test_the_checker_accepts_exported_names(expr: str) -> None:
    assert problems(one_panel(expr, "{{queue}}" if "queue" in expr else ""), EXPORTED) == []


def test_template_variables_are_checked() -> None:
    dashboard: dict[str, Any] = {
        "panels": [],
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "queue",
                    "type": "query",
                    "query": "label_values(taskq_queue_depth, queue)",
                },
                {
                    "name": "host",
                    "type": "query",
                    "query": {"query": "label_values(taskq_queue_depth, host)", "refId": "V"},
                },
            ]
        },
    }
    found = problems(dashboard, EXPORTED)
    assert len(found) == 1, found
    assert "variable 'host'" in found[0]
    assert "'host'" in found[0]


def balanced(expr: str) -> bool:
    """Brackets pair up outside string literals."""
    pairs = {")": "(", "]": "[", "}": "{"}
    stack: list[str] = []
    for ch in STRING.sub('""', expr):
        if ch in "([{":
            stack.append(ch)
        elif ch in pairs and (not stack or stack.pop() != pairs[ch]):
            return False
    return not stack


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = load()
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["uid"]
    assert dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variable_query(variables["queue"]).startswith("label_values(taskq_")
    assert variable_query(variables["queue"]).endswith(", queue)")
    everything = list(panels(dashboard))
    ids = [p.get("id") for p in everything]
    assert all(isinstance(i, int) for i in ids), ids
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    cells: dict[tuple[int, int], str] = {}
    for panel in everything:
        title = panel.get("title")
        assert title, f"panel {panel.get('id')} has no title"
        assert panel.get("type"), f"panel {title!r} has no type"
        pos = panel.get("gridPos")
        assert isinstance(pos, dict), f"panel {title!r} has no gridPos"
        h, w, x, y = (pos[k] for k in ("h", "w", "x", "y"))
        assert all(isinstance(v, int) and v >= 0 for v in (h, w, x, y)), (title, pos)
        assert h > 0, f"panel {title!r} has no height: {pos}"
        assert w > 0, f"panel {title!r} has no width: {pos}"
        assert x + w <= 24, f"panel {title!r} does not fit the 24 columns: {pos}"
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            assert cell not in cells, f"panel {title!r} overlaps {cells[cell]!r}"
            cells[cell] = title
        if panel["type"] == "row":
            continue
        assert panel.get("datasource", {}).get("uid") == "${datasource}", title
        targets = panel.get("targets")
        assert targets, f"panel {title!r} has no target"
        refs = [t.get("refId") for t in targets]
        assert all(refs), f"panel {title!r}: a target has no refId"
        assert len(refs) == len(set(refs)), f"panel {title!r}: duplicate refIds {refs}"
        for target in targets:
            assert balanced(target["expr"]), f"panel {title!r}: unbalanced {target['expr']!r}"
    # hand-readable: indented by 2, as json.dumps(indent=2) writes it
    text = DASHBOARD.read_text(encoding="utf-8")
    assert text == json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"
