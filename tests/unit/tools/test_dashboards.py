"""The Grafana dashboards: built in code, the chart's JSON is not stale, and the JSON is what
Grafana imports (current schemaVersion, unique panel ids, a datasource variable), querying only
metrics of the vocabulary."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from dashboards import DASHBOARDS, m, render_dashboards
from modelgrid_serving.metrics import FAMILIES

pytestmark = pytest.mark.unit

CHART_DASHBOARDS = Path(__file__).resolve().parents[3] / "charts" / "modelgrid" / "dashboards"
GRAFANA_SCHEMA_VERSION = 41
"""The dashboard schema of Grafana 11.6 and 12 (what grafana-foundation-sdk's pin emits)."""
METRIC = re.compile(r"\bmodelgrid_[a-z0-9_]+")
SUFFIXES = ("_bucket", "_count", "_sum")


def _dashboards() -> dict[str, dict[str, Any]]:
    return {name: json.loads(text) for name, text in render_dashboards().items()}


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows hold their panels
    return out


def _targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for p in _panels(dashboard) for t in p.get("targets", [])]


def test_dashboards_in_the_chart_are_not_stale() -> None:
    shipped = {p.name: p.read_text() for p in CHART_DASHBOARDS.glob("*.json")}
    assert shipped == render_dashboards(), "stale: run `make dashboards`"


def test_dashboards_import_into_grafana() -> None:
    uids = set()
    for name, dashboard in _dashboards().items():
        assert dashboard["schemaVersion"] == GRAFANA_SCHEMA_VERSION, name
        assert dashboard["uid"] and len(dashboard["uid"]) <= 40, name
        uids.add(dashboard["uid"])
        ids = [p["id"] for p in _panels(dashboard)]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), name
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in _panels(dashboard):
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, (name, panel["title"])
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
                assert panel["targets"] and panel["title"] and panel["description"]
                ref_ids = [t["refId"] for t in panel["targets"]]
                assert len(set(ref_ids)) == len(ref_ids) and all(ref_ids)
    assert len(uids) == len(DASHBOARDS)


def test_dashboards_query_only_metrics_of_the_vocabulary() -> None:
    exported = {f.name for f in FAMILIES}
    queried = set()
    for dashboard in _dashboards().values():
        expressions = [t["expr"] for t in _targets(dashboard)]
        expressions += [v.get("query", "") for v in dashboard["templating"]["list"]]
        for expr in expressions:
            for name in METRIC.findall(expr):
                base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
                assert base in exported, f"{name} in {expr!r}"
                queried.add(base)
    # What a platform operator watches is on a dashboard (the rest are for alerts and stats).
    unused = exported - queried
    assert unused == {
        "modelgrid_gateway_upstream_errors_total",
        "modelgrid_gateway_rate_limited_total",
        "modelgrid_replica_request_duration_seconds",
    }


def test_dashboards_model_drilldown_is_about_the_chosen_model() -> None:
    dashboard = _dashboards()["modelgrid-model.json"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["model"]["type"] == "query"
    assert variables["model"]["datasource"]["uid"] == "${datasource}"
    for target in _targets(dashboard):
        assert 'model="$model"' in target["expr"], target["expr"]


def test_dashboards_overview_covers_what_the_issue_asks() -> None:
    titles = " ".join(p["title"] for p in _panels(_dashboards()["modelgrid-overview.json"]))
    for word in (
        "Requests/s",
        "Error",
        "Time to first token",
        "Inter-token",
        "Tokens/s",
        "queued",
        "replicas by pool and accelerator",
        "Cold start",
        "reconcile",
    ):
        assert word.lower() in titles.lower(), word


def test_dashboards_refuse_a_metric_the_code_does_not_export() -> None:
    with pytest.raises(KeyError, match="not a modelgrid metric"):
        m("modelgrid_gateway_requests")
