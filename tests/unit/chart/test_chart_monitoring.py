"""ServiceMonitor, PodMonitor and Grafana dashboard ConfigMaps.

The monitors exist only when switched on AND the cluster serves monitoring.coreos.com/v1.
They are checked field by field here, and strictly (an unknown field is an error, as with the
API server's strict field validation) against the Prometheus Operator's own schemas for
ServiceMonitor and PodMonitor. Those come pinned from PyPI through ``.ci/tools.sh
prometheus-crds`` (see there), or from ``$MODELGRID_PROMETHEUS_CRDS``: a folder holding
``monitoring.coreos.com_servicemonitors.{json,yaml}`` and ``..._podmonitors.{json,yaml}``, for
instance a prometheus-operator release's CRD files.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART,
    DASHBOARDS,
    MONITORING_API,
    NAMESPACE,
    prometheus_crds,
    values_args,
)
from fidelity_support import SUPPORTED_KUBERNETES
from fidelity_support.admission import admit, crd_schema
from fidelity_support.openapi import schema_errors
from fidelity_support.structural import crd_violations
from modelgrid_operator.ray_ports import REPLICA_METRICS_PORT_NAME
from modelgrid_operator.render.metadata import MODEL_LABEL

pytestmark = pytest.mark.unit

MONITORING = "monitoring-values"
PROMETHEUS_DURATION = re.compile(
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?"
    r"(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)


@cache
def _crd(plural: str) -> dict[str, Any]:
    folder = prometheus_crds()
    for suffix, load in ((".json", json.loads), (".yaml", yaml.safe_load)):
        path = folder / f"monitoring.coreos.com_{plural}{suffix}"
        if path.is_file():
            return load(path.read_text())
    pytest.fail(f"{folder} has no monitoring.coreos.com_{plural}.json or .yaml")


def _crd_schema(plural: str) -> dict[str, Any]:
    return crd_schema(_crd(plural), "v1")


def _copy(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(obj))


def _kinds(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(o["kind"] for o in objects if o["apiVersion"] == MONITORING_API)


def test_chart_monitors_only_when_asked_and_served(helm, rendered):
    assert _kinds(rendered[MONITORING].objects) == ["PodMonitor", "PodMonitor", "ServiceMonitor"]
    assert _kinds(rendered["default"].objects) == []  # the API is there, the switch is off
    without_api = helm.template(*values_args(MONITORING))
    assert without_api.returncode == 0, without_api.stderr
    assert _kinds([o for o in yaml.safe_load_all(without_api.stdout) if o]) == []


def test_chart_servicemonitor_scrapes_the_gateway_service(rendered):
    objects = rendered[MONITORING]
    monitor = objects.one("ServiceMonitor")
    service = objects.one("Service", "gateway")
    spec = monitor["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "endpoints"}
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["endpoints"]
    assert set(endpoint) == {"port", "path", "interval", "scrapeTimeout"}
    assert endpoint["port"] == "metrics"  # the metrics port: the API's no longer answers it
    assert {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"} in (
        service["spec"]["ports"]
    )
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s" and PROMETHEUS_DURATION.match(endpoint["scrapeTimeout"])
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_chart_podmonitor_scrapes_every_model_pod(rendered):
    monitor = rendered[MONITORING].one("PodMonitor", "model")
    spec = monitor["spec"]
    assert set(spec) == {"selector", "namespaceSelector", "podMetricsEndpoints"}
    assert spec["selector"] == {"matchExpressions": [{"key": MODEL_LABEL, "operator": "Exists"}]}
    assert spec["namespaceSelector"] == {"any": True}
    (endpoint,) = spec["podMetricsEndpoints"]
    # The replicas' own port, not KubeRay's `metrics` (Ray's 8080, added by KubeRay's
    # DefaultWorkerPodTemplate when no port has that name).
    assert endpoint == {
        "port": REPLICA_METRICS_PORT_NAME,
        "path": "/metrics",
        "interval": "30s",
        "scrapeTimeout": "10s",
    }


def test_chart_operator_podmonitor_scrapes_the_operator_metrics_port(rendered):
    objects = rendered[MONITORING]
    monitor = objects.one("PodMonitor", "operator")
    deployment = objects.one("Deployment", "operator")
    pod = deployment["spec"]["template"]
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    (endpoint,) = spec["podMetricsEndpoints"]
    assert endpoint == {
        "port": "metrics",
        "path": "/metrics",
        "interval": "30s",
        "scrapeTimeout": "10s",
    }
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert f"--metrics-port={ports['metrics']}" in container["command"]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_chart_operator_podmonitor_needs_the_operator(helm):
    result = helm.template(
        *values_args(MONITORING),
        "--api-versions",
        MONITORING_API,
        "--set",
        "operator.enabled=false",
    )
    assert result.returncode == 0, result.stderr
    kinds = _kinds([o for o in yaml.safe_load_all(result.stdout) if o])
    assert kinds == ["PodMonitor", "ServiceMonitor"]


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
    ("kind", "plural", "component"),
    [
        ("ServiceMonitor", "servicemonitors", "gateway"),
        ("PodMonitor", "podmonitors", "model"),
        ("PodMonitor", "podmonitors", "operator"),
    ],
)
def test_chart_monitors_pass_the_prometheus_operator_crd(rendered, kind, plural, component):
    schema = _crd_schema(plural)
    monitor = rendered[MONITORING].one(kind, component)
    assert schema_errors(monitor, schema, strict=True) == []
    admission = admit(monitor, schema)
    assert admission.accepted, admission.errors
    assert admission.pruned == []


@pytest.mark.parametrize("plural", ["servicemonitors", "podmonitors"])
def test_chart_prometheus_crds_are_the_real_ones(plural):
    crd = _crd(plural)
    assert crd["metadata"]["name"] == f"{plural}.monitoring.coreos.com"
    assert crd_violations(crd) == []  # a structural schema, as the API server requires
    spec = _crd_schema(plural)["properties"]["spec"]
    endpoints = "endpoints" if plural == "servicemonitors" else "podMetricsEndpoints"
    assert {"selector", "namespaceSelector", endpoints} <= set(spec["properties"])
    assert "selector" in spec["required"]
    endpoint = spec["properties"][endpoints]["items"]
    assert {"port", "path", "interval", "scrapeTimeout"} <= set(endpoint["properties"])
    assert not endpoint.get("x-kubernetes-preserve-unknown-fields")


def test_chart_prometheus_crd_check_catches_a_misspelled_endpoint_field(rendered):
    schema = _crd_schema("servicemonitors")
    monitor = _copy(rendered[MONITORING].one("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "30s"  # the field is `interval`
    assert schema_errors(monitor, schema, strict=True) == [
        (
            "spec.endpoints[0]",
            "Additional properties are not allowed ('scrapeInterval' was unexpected)",
        )
    ]
    # Without strict field validation the API server drops it without a word: why we are strict.
    admission = admit(monitor, schema)
    assert admission.accepted, admission.errors
    assert admission.pruned == ["spec.endpoints[0].scrapeInterval"]


def test_chart_prometheus_crd_check_catches_a_misspelled_spec_field(rendered):
    schema = _crd_schema("servicemonitors")
    monitor = _copy(rendered[MONITORING].one("ServiceMonitor"))
    monitor["spec"]["namespaceSelectors"] = monitor["spec"].pop("namespaceSelector")
    assert schema_errors(monitor, schema, strict=True) == [
        ("spec", "Additional properties are not allowed ('namespaceSelectors' was unexpected)")
    ]


def test_chart_prometheus_crd_check_catches_a_bad_duration(rendered):
    schema = _crd_schema("podmonitors")
    monitor = _copy(rendered[MONITORING].one("PodMonitor", "model"))
    monitor["spec"]["podMetricsEndpoints"][0]["interval"] = "30 seconds"
    (error,) = schema_errors(monitor, schema, strict=True)
    assert error[0] == "spec.podMetricsEndpoints[0].interval"
    assert not admit(monitor, schema).accepted


def test_chart_ships_the_generated_dashboards(rendered):
    maps = {
        m["metadata"]["name"]: m
        for m in rendered[MONITORING].by_kind["ConfigMap"]
        if m["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboards"
    }
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert sorted(maps) == [f"mg-modelgrid-dashboard-{f.stem}" for f in files]
    assert len(files) == 2
    for path in files:
        config_map = maps[f"mg-modelgrid-dashboard-{path.stem}"]
        assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())


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
