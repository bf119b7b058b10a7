"""The chart's part in closing model pods: the operator learns which pods are the gateway's,
the security settings reach it as typed values, and model namespaces can get a default deny."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
import yaml
from chart_support import NAMESPACE, Rendered
from fidelity_support import SUPPORTED_KUBERNETES
from modelgrid_operator.settings import from_env

pytestmark = pytest.mark.unit


def _template(helm, *args: str) -> Rendered:
    result = helm.template(*args)
    assert result.returncode == 0, result.stderr
    return Rendered("test", result.stdout, [o for o in yaml.safe_load_all(result.stdout) if o])


def _operator_settings(objects: Rendered):
    pod = objects.one("Deployment", "operator")["spec"]["template"]["spec"]
    return from_env({v["name"]: v["value"] for v in pod["containers"][0].get("env", [])})


def test_chart_operator_admits_exactly_this_releases_gateway(rendered):
    objects = rendered["default"]
    settings = _operator_settings(objects)
    gateway = objects.one("Deployment", "gateway")
    assert settings.gateway_namespace == NAMESPACE == gateway["metadata"]["namespace"]
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert settings.gateway_pod_labels.items() <= pod_labels.items()
    assert settings.gateway_pod_labels == gateway["spec"]["selector"]["matchLabels"]


def _default_deny(objects: Rendered) -> list[dict]:
    """The default-deny policies (the chart's own components have policies of their own)."""
    return [
        p
        for p in objects.by_kind.get("NetworkPolicy", [])
        if p["metadata"]["name"].endswith("-default-deny")
    ]


def test_chart_no_default_deny_unless_asked(rendered):
    assert _default_deny(rendered["default"]) == []


def test_chart_security_settings_reach_the_operator_typed(helm):
    settings = {
        "allowedHostPaths": ["/models"],
        "allowedEngineArgs": ["trust_remote_code"],
        "kuberayNamespace": "ray-system",
        "metricsNamespace": "monitoring",
        "runAsUser": 2000,
        "gatewayNamespace": "edge",
    }
    objects = _template(helm, "--set-json", f"operator.settings={json.dumps(settings)}")
    found = _operator_settings(objects)
    assert found.allowed_host_paths == ("/models",)
    assert found.allowed_engine_args == ("trust_remote_code",)
    assert (found.kuberay_namespace, found.metrics_namespace) == ("ray-system", "monitoring")
    assert found.run_as_user == 2000
    assert found.gateway_namespace == "edge"  # the user's word wins over the release's


@pytest.mark.parametrize("bad", ['{"allowedHostPaths": ["models"]}', '{"runAsUser": 0}'])
def test_chart_security_settings_are_checked_by_the_schema(helm, bad):
    result = helm.template("--set-json", f"operator.settings={bad}")
    assert result.returncode != 0
    assert "/operator/settings/" in result.stderr


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
def test_chart_default_deny_in_each_model_namespace(helm, version):
    objects = _template(helm, "--set", "networkPolicy.defaultDenyNamespaces={team-a,team-b}")
    policies = _default_deny(objects)
    assert sorted(p["metadata"]["namespace"] for p in policies) == ["team-a", "team-b"]
    for policy in policies:
        assert policy["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
        kubernetes_validate.validate(policy, version, strict=True)
