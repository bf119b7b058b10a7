"""ServiceMonitor, PodMonitor and Grafana dashboard ConfigMaps.

The monitors exist only when switched on AND the cluster serves monitoring.coreos.com/v1.
They are checked field by field here, and strictly against the Prometheus Operator's own CRD
schemas where those files can be found: ``$MODELGRID_PROMETHEUS_CRDS`` or
``../shared/prometheus-operator-crds/`` beside the repository (the files
``monitoring.coreos.com_servicemonitors.yaml`` and ``..._podmonitors.yaml`` of the
prometheus-operator release; no PyPI package ships them).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import DASHBOARDS, MONITORING_API, NAMESPACE, ROOT, values_args
from fidelity_support import SUPPORTED_KUBERNETES
from fidelity_support.admission import admit, crd_schema
from fidelity_support.openapi import schema_errors
from modelgrid_operator.render.metadata import MODEL_LABEL

pytestmark = pytest.mark.unit

MONITORING = "monitoring-values"
PROMETHEUS_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
    r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


def _crds_folder() -> Path:
    named = os.environ.get("MODELGRID_PROMETHEUS_CRDS")
    return Path(named) if named else ROOT.parent / "shared" / "prometheus-operator-crds"


def _crd_schema(plural: str) -> dict[str, Any]:
    path = _crds_folder() / f"monitoring.coreos.com_{plural}.yaml"
    if not path.is_file():
        pytest.skip(
            f"Prometheus Operator CRD not found: {path} is missing (set "
            "MODELGRID_PROMETHEUS_CRDS to a folder holding it); fields were checked by hand"
        )
    return crd_schema(yaml.safe_load(path.read_text()), "v1")


def _kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects if o["apiVersion"] == MONITORING_API)


def test_chart_monitors_only_when_asked_and_served(helm, rendered):
    assert _kinds(rendered[MONITORING].objects) == ["PodMonitor", "ServiceMonitor"]
    assert _kinds(rendered["default"].objects) == []  # the API is there, the switch is off
    without_api = helm.template(*values_args(MONITORING))
    assert without_api.returncode == 0, without_api.stderr
    assert _kinds([o for o in yaml.safe_load_all(without_api.stdout) if o]) == []


def test_chart_servicemonitor_scrapes_the_gateway_service(rendered):
    objects = rendered[MONITORING]
    monitor = objects.one("ServiceMonitor")
    service = objects.one("Service")
    spec = monitor["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) == {"port", "path", "interval", "scrapeTimeout"}
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s" and PROMETHEUS_DURATION.match(endpoint["scrapeTimeout"])
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_chart_podmonitor_scrapes_every_model_pod(rendered):
    monitor = rendered[MONITORING].one("PodMonitor")
    spec = monitor["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "podMetricsEndpoints"}
    assert spec["selector"] == {"matchExpressions": [{"key": MODEL_LABEL, "operator": "Exists"}]}
    assert spec["namespaceSelector"] == {"any": True}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "interval": "30s",
        "scrapeTimeout": "10s",
    }


def test_chart_podmonitor_follows_the_watched_namespaces(helm):
    result = helm.template(
        *values_args(MONITORING),
        "--api-versions",
        MONITORING_API,
        "--set",
        "watchNamespaces={team-a,team-b}",
        "--show-only",
        "templates/podmonitor.yaml",
    )
    assert result.returncode == 0, result.stderr
    monitor = yaml.safe_load(result.stdout)
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


@pytest.mark.parametrize(
    ("kind", "plural"), [("ServiceMonitor", "servicemonitors"), ("PodMonitor", "podmonitors")]
)
def test_chart_monitors_pass_the_prometheus_operator_crd(rendered, kind, plural):
    schema = _crd_schema(plural)
    monitor = rendered[MONITORING].one(kind)
    assert schema_errors(monitor, schema, strict=True) == []
    admission = admit(monitor, schema)
    assert admission.accepted, admission.errors
    assert admission.pruned == []


def test_chart_prometheus_crd_check_catches_a_misspelling(rendered):
    schema = _crd_schema("servicemonitors")
    monitor = json.loads(json.dumps(rendered[MONITORING].one("ServiceMonitor")))
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "30s"
    assert schema_errors(monitor, schema, strict=True)


def test_chart_has_no_dashboards_yet(helm):
    result = helm.template("--set", "dashboards.enabled=true")
    assert result.returncode == 0, result.stderr
    assert "grafana_dashboard" not in result.stdout


def test_chart_dashboards_become_labelled_configmaps(chart_copy):
    result = chart_copy.helm.template(
        "--set",
        "dashboards.enabled=true",
        "--set",
        "dashboards.annotations.grafana_folder=modelgrid",
        chart=chart_copy.path,
    )
    assert result.returncode == 0, result.stderr
    maps = [
        o
        for o in yaml.safe_load_all(result.stdout)
        if o
        and o["kind"] == "ConfigMap"
        and o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "dashboards"
    ]
    assert sorted(m["metadata"]["name"] for m in maps) == [
        "mg-modelgrid-dashboard-overview",
        "mg-modelgrid-dashboard-per-model",
    ]
    for config_map in maps:
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert config_map["metadata"]["annotations"] == {"grafana_folder": "modelgrid"}
        (name,) = config_map["data"]
        assert json.loads(config_map["data"][name]) == DASHBOARDS[name]
        for version in SUPPORTED_KUBERNETES:
            kubernetes_validate.validate(config_map, version, strict=True)
    off = chart_copy.helm.template(chart=chart_copy.path)
    assert "grafana_dashboard" not in off.stdout
