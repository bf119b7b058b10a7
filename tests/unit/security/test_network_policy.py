"""Any pod on the cluster network, against a model's pods, as ``modelgrid render`` prints them.

Triggers (issue 15): the Ray head's dashboard (8265: job submission is code execution in the
model's pods), GCS (6379) and the Ray client port (10001) were open to every pod, and
``<model>-serve-svc:8000`` answered anyone, bypassing the gateway's keys and limits; no
NetworkPolicy was rendered. Each case is one pod's connection, judged by the pure evaluator in
``netpol.py`` over every object ``modelgrid render`` prints for the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from factories import make_model, pool
from fidelity_support import SUPPORTED_KUBERNETES
from modelgrid_cli.main import main
from modelgrid_operator.render import render_network_policy
from modelgrid_operator.render.metadata import MODEL_LABEL
from modelgrid_operator.settings import RenderSettings
from netpol import Pod, admits
from rendered import pool_rayservice

pytestmark = [pytest.mark.unit, pytest.mark.security]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "cpu-tiny.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

DASHBOARD, GCS, CLIENT, SERVE, METRICS = 8265, 6379, 10001, 8000, 8090

GATEWAY = Pod(
    "modelgrid-system",
    {
        "app.kubernetes.io/name": "modelgrid",
        "app.kubernetes.io/instance": "mg",
        "app.kubernetes.io/component": "gateway",
    },
)
KUBERAY = Pod("kuberay-system", {"app.kubernetes.io/name": "kuberay-operator"})
ANY_POD = Pod("tenant-a", {"app": "curl"})


def rendered(path: Path, capsys: Any) -> list[dict[str, Any]]:
    assert main(["render", str(path)]) == 0
    return list(yaml.safe_load_all(capsys.readouterr().out))


def model_pods(objects: list[dict[str, Any]]) -> list[Pod]:
    """The head and every worker pod of each rendered RayService, with their labels."""
    pods = []
    for obj in objects:
        if obj["kind"] != "RayService":
            continue
        cluster = obj["spec"]["rayClusterConfig"]
        templates = [cluster["headGroupSpec"]["template"]]
        templates += [g["template"] for g in cluster["workerGroupSpecs"]]
        pods += [Pod(obj["metadata"]["namespace"], t["metadata"]["labels"]) for t in templates]
    return pods


@pytest.fixture
def cluster(capsys: Any) -> tuple[list[dict[str, Any]], list[Pod]]:
    objects = rendered(EXAMPLE, capsys)
    return objects, model_pods(objects)


@pytest.mark.parametrize("port", [DASHBOARD, GCS, CLIENT, SERVE, METRICS])
def test_network_any_pod_reaches_no_port_of_the_model(cluster, port):
    objects, pods = cluster
    for target in pods:
        assert not admits(objects, source=ANY_POD, target=target, port=port)


@pytest.mark.parametrize("port", [DASHBOARD, GCS, CLIENT, SERVE])
def test_network_a_pod_in_the_models_own_namespace_is_no_exception(cluster, port):
    objects, pods = cluster
    neighbour = Pod(pods[0].namespace, {"app": "notebook"})
    other_model = Pod(pods[0].namespace, {MODEL_LABEL: "someone-else"})
    for target in pods:
        assert not admits(objects, source=neighbour, target=target, port=port)
        assert not admits(objects, source=other_model, target=target, port=port)


def test_network_serve_svc_answers_only_the_gateway(cluster):
    objects, pods = cluster
    for target in pods:
        assert admits(objects, source=GATEWAY, target=target, port=SERVE)
        for port in (DASHBOARD, GCS, CLIENT):
            assert not admits(objects, source=GATEWAY, target=target, port=port)
    elsewhere = Pod("tenant-a", GATEWAY.labels)  # a gateway look-alike in another namespace
    assert not admits(objects, source=elsewhere, target=pods[0], port=SERVE)


def test_network_dashboard_answers_only_kuberays_operator(cluster):
    """KubeRay reads and writes Serve applications through the head Service's dashboard port:
    it must get through, and nobody else."""
    objects, pods = cluster
    head = pods[0]
    assert admits(objects, source=KUBERAY, target=head, port=DASHBOARD)
    assert not admits(
        objects, source=Pod("kuberay-system", {"app": "x"}), target=head, port=DASHBOARD
    )
    for port in (GCS, CLIENT):
        assert not admits(objects, source=KUBERAY, target=head, port=port)


def test_network_the_models_own_pods_reach_each_other_on_every_port(cluster):
    objects, pods = cluster
    for source in pods:
        for target in pods:
            for port in (DASHBOARD, GCS, CLIENT, SERVE, METRICS, 52365, 20000):
                assert admits(objects, source=source, target=target, port=port)


def test_network_metrics_port_opens_to_the_monitoring_namespace_only_when_set():
    model = make_model(pools=[pool("cpu", "cpu")])
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    worker = Pod(model.namespace, {MODEL_LABEL: model.name})
    closed = [render_network_policy(model, settings=RenderSettings())]
    assert not admits(closed, source=prometheus, target=worker, port=METRICS)
    opened = [render_network_policy(model, settings=RenderSettings(metrics_namespace="monitoring"))]
    assert admits(opened, source=prometheus, target=worker, port=METRICS)
    assert not admits(opened, source=prometheus, target=worker, port=SERVE)


def test_network_rays_own_metrics_port_opens_to_the_monitoring_namespace_too():
    """KubeRay-style monitors scrape the port KubeRay names ``metrics``: Ray's 8080, which
    ``setMissingRayStartParams`` sets as ``metrics-export-port`` on every Ray node."""
    model = make_model(pools=[pool("cpu", "cpu")])
    prometheus = Pod("monitoring", {"app.kubernetes.io/name": "prometheus"})
    worker = Pod(model.namespace, {MODEL_LABEL: model.name})
    closed = [render_network_policy(model, settings=RenderSettings())]
    assert not admits(closed, source=prometheus, target=worker, port=8080)
    assert not admits(closed, source=GATEWAY, target=worker, port=8080)
    opened = [render_network_policy(model, settings=RenderSettings(metrics_namespace="monitoring"))]
    assert admits(opened, source=prometheus, target=worker, port=8080)


def test_network_policy_follows_the_gateway_the_chart_names():
    settings = RenderSettings(gateway_namespace="edge", gateway_pod_labels={"app": "gw"})
    model = make_model(pools=[pool("cpu", "cpu")])
    policies = [render_network_policy(model, settings=settings)]
    worker = Pod(model.namespace, {MODEL_LABEL: model.name})
    assert admits(policies, source=Pod("edge", {"app": "gw"}), target=worker, port=SERVE)
    assert not admits(policies, source=GATEWAY, target=worker, port=SERVE)


def test_network_policy_is_owned_by_the_model_and_named_after_it():
    model = make_model()
    policy = render_network_policy(
        model, settings=RenderSettings(), owner={"name": "demo", "uid": "u1"}
    )
    assert policy["metadata"]["name"] == model.name
    assert policy["metadata"]["namespace"] == model.namespace
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "u1"


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_network_policy_validates_strictly_as_a_core_object(path, version, capsys):
    for obj in rendered(path, capsys):
        if obj["kind"] == "NetworkPolicy":
            kubernetes_validate.validate(obj, version, strict=True)


# The evaluator must be able to say no and yes. ---------------------------------------------


def test_netpol_evaluator_without_policies_admits_everything():
    assert admits([], source=ANY_POD, target=Pod("ml", {MODEL_LABEL: "m"}), port=DASHBOARD)


def test_netpol_evaluator_policies_add_up_and_ports_bound_rules():
    deny = {
        "kind": "NetworkPolicy",
        "metadata": {"namespace": "ml", "name": "deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    target = Pod("ml", {"x": "1"})
    assert not admits([deny], source=ANY_POD, target=target, port=80)
    allow = {
        "kind": "NetworkPolicy",
        "metadata": {"namespace": "ml", "name": "allow"},
        "spec": {
            "podSelector": {"matchLabels": {"x": "1"}},
            "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"port": 80}]}],
        },
    }
    assert admits([deny, allow], source=ANY_POD, target=target, port=80)
    assert not admits([deny, allow], source=ANY_POD, target=target, port=81)


def test_network_dashboard_listens_where_the_setting_says():
    """0.0.0.0 by default: KubeRay's operator reaches it through the head Service (the policy,
    not the bind address, keeps everyone else out)."""
    model = make_model()
    default = pool_rayservice(model, settings=RenderSettings())
    params = default["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert params["dashboard-host"] == "0.0.0.0"
    local = pool_rayservice(model, settings=RenderSettings(dashboard_host="127.0.0.1"))
    params = local["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"]
    assert params["dashboard-host"] == "127.0.0.1"
