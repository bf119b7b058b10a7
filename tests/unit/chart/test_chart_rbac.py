"""The chart's RBAC is least privilege: the operator gets exactly what it calls, no more.

One source of truth: ``e2e/kind/manifests/rbac.yaml`` holds the operator's ClusterRole, and
``tests/unit/fidelity/test_e2e_kind.py`` proves it equals what kopf and
``operator/modelgrid_operator/k8s.py`` call. Here the chart must grant the same, cluster-wide;
when it watches given namespaces, the same split into Roles there plus the cluster-scoped rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import NAMESPACE, ROOT, Rendered

pytestmark = pytest.mark.unit

KIND_RBAC = ROOT / "e2e" / "kind" / "manifests" / "rbac.yaml"
CLUSTER_SCOPED = {
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("", "namespaces"),
    ("", "nodes"),
}
NAMESPACE_SCAN = {("", "namespaces"): {"list", "watch"}}
"""kopf lists and watches namespaces only when given namespaces (to follow them); cluster-wide
it does not (kopf/_core/reactor/observation.py)."""

GATEWAY_MODELS = {("modelgrid.io", "inferencemodels"): {"list", "watch"}}
"""The gateway lists and watches InferenceModels (its sources.py); it never gets one by name.
It watches its keys Secret with a metadata.name field selector, which a Role's resourceNames
can restrict."""

ADMIN_MODELS = {("modelgrid.io", "inferencemodels"): {"get", "list", "create", "delete"}}
"""With the admin API on, the gateway creates, reads and deletes InferenceModels in the admin
namespace (gateway/cluster_models.py): no patch, no other kind, no other namespace."""

Grants = dict[tuple[str, str], set[str]]


def grants(*roles: dict[str, Any]) -> Grants:
    out: Grants = {}
    for role in roles:
        for rule in role["rules"]:
            assert "resourceNames" not in rule or role["kind"] == "Role"
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def kind_operator_grants() -> Grants:
    (role,) = [
        d
        for d in yaml.safe_load_all(Path(KIND_RBAC).read_text())
        if d and d["kind"] == "ClusterRole"
    ]
    return grants(role)


def component_objects(rendered: Rendered, component: str, kind: str) -> list[dict[str, Any]]:
    return [
        o
        for o in rendered.by_kind.get(kind, [])
        if o["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]


def bound_to(rendered: Rendered, role: dict[str, Any], account: str) -> bool:
    binding_kind = "ClusterRoleBinding" if role["kind"] == "ClusterRole" else "RoleBinding"
    for binding in rendered.by_kind.get(binding_kind, []):
        if binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role["kind"],
            "name": role["metadata"]["name"],
        } and binding["metadata"].get("namespace") == role["metadata"].get("namespace"):
            return binding["subjects"] == [
                {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
            ]
    return False


def watch_roles(rendered: Rendered) -> list[dict[str, Any]]:
    """The operator's Roles in watched namespaces (not its leader election's)."""
    return [
        r
        for r in component_objects(rendered, "operator", "Role")
        if not r["metadata"]["name"].endswith("-leader-election")
    ]


def kind_election_rules() -> list[dict[str, Any]]:
    (role,) = [
        d for d in yaml.safe_load_all(Path(KIND_RBAC).read_text()) if d and d["kind"] == "Role"
    ]
    return role["rules"]


def test_chart_operator_takes_and_renews_its_own_lease_only(rendered):
    for name in ("default", "namespaced-values"):
        objects = rendered[name]
        (role,) = [
            r
            for r in component_objects(objects, "operator", "Role")
            if r["metadata"]["name"].endswith("-leader-election")
        ]
        assert role["metadata"]["namespace"] == NAMESPACE  # the release's, watched or not
        command = objects.one("Deployment", "operator")["spec"]["template"]["spec"]["containers"][
            0
        ]["command"]
        (lease,) = [
            a.removeprefix("--lease-name=") for a in command if a.startswith("--lease-name=")
        ]
        # The kind manifests' Role (checked against a real API server by e2e/kind/run.sh), with
        # this release's Lease name.
        expected = kind_election_rules()
        expected[1]["resourceNames"] = [lease]
        assert role["rules"] == expected
        assert bound_to(objects, role, service_account(objects, "operator"))


def test_chart_operator_without_leader_election_gets_no_lease_role(helm):
    result = helm.template(
        "--set", "operator.leaderElection.enabled=false", "--set", "operator.replicas=1"
    )
    assert result.returncode == 0, result.stderr
    assert "-leader-election" not in result.stdout
    assert "coordination.k8s.io" not in result.stdout


def service_account(rendered: Rendered, component: str) -> str:
    deployment = rendered.one("Deployment", component)
    account = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    (made,) = component_objects(rendered, component, "ServiceAccount")
    assert made["metadata"]["name"] == account
    return account


def test_chart_operator_clusterrole_equals_the_kind_one(rendered):
    objects = rendered["default"]
    (role,) = component_objects(objects, "operator", "ClusterRole")
    assert grants(role) == kind_operator_grants()
    assert not watch_roles(objects)  # cluster-wide: no Role per namespace
    assert bound_to(objects, role, service_account(objects, "operator"))
    assert "*" not in yaml.safe_dump(role)


def test_chart_operator_in_given_namespaces_gets_roles_there(rendered):
    objects = rendered["namespaced-values"]
    account = service_account(objects, "operator")
    (cluster_role,) = component_objects(objects, "operator", "ClusterRole")
    assert set(grants(cluster_role)) <= CLUSTER_SCOPED
    assert bound_to(objects, cluster_role, account)
    roles = watch_roles(objects)
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    needed = kind_operator_grants()
    for role in roles:
        assert bound_to(objects, role, account)
        assert grants(role) == {k: v for k, v in needed.items() if k not in CLUSTER_SCOPED}
    assert grants(cluster_role, *roles) == {**needed, **NAMESPACE_SCAN}


def test_chart_gateway_reads_models_and_its_keys_only(rendered):
    objects = rendered["default"]
    account = service_account(objects, "gateway")
    (cluster_role,) = component_objects(objects, "gateway", "ClusterRole")
    assert grants(cluster_role) == GATEWAY_MODELS
    assert bound_to(objects, cluster_role, account)
    (keys_role,) = component_objects(objects, "gateway", "Role")
    assert keys_role["metadata"]["namespace"] == NAMESPACE
    assert keys_role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["list", "watch"],
            "resourceNames": [objects.keys_secret()["metadata"]["name"]],
        }
    ]
    assert bound_to(objects, keys_role, account)


def test_chart_gateway_in_given_namespaces_gets_roles_there(rendered):
    objects = rendered["namespaced-values"]
    account = service_account(objects, "gateway")
    assert not component_objects(objects, "gateway", "ClusterRole")
    roles = [
        r
        for r in component_objects(objects, "gateway", "Role")
        if r["metadata"]["namespace"] != NAMESPACE
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert grants(role) == GATEWAY_MODELS
        assert bound_to(objects, role, account)


def _admin_roles(objects: Rendered) -> list[dict[str, Any]]:
    return [
        r
        for r in component_objects(objects, "gateway", "Role")
        if r["metadata"]["name"].endswith("-admin")
    ]


@pytest.mark.security
def test_chart_gateway_admin_creates_and_deletes_models_in_its_namespace_only(rendered):
    objects = rendered["admin-values"]
    account = service_account(objects, "gateway")
    (role,) = _admin_roles(objects)
    assert role["metadata"]["namespace"] == "models"
    assert grants(role) == ADMIN_MODELS
    assert bound_to(objects, role, account)
    (cluster_role,) = component_objects(objects, "gateway", "ClusterRole")
    assert grants(cluster_role) == GATEWAY_MODELS  # elsewhere it still only reads


@pytest.mark.security
def test_chart_gateway_admin_is_off_by_default(rendered):
    for name, objects in rendered.items():
        if name != "admin-values":
            assert _admin_roles(objects) == [], name


@pytest.mark.security
def test_chart_gateway_admin_needs_api_keys(helm):
    result = helm.template(
        "--set", "gateway.admin.enabled=true", "--set", "gateway.apiKeys.enabled=false"
    )
    assert result.returncode != 0
    assert "gateway.admin needs gateway.apiKeys.enabled" in result.stderr


def test_chart_gateway_admin_namespace_must_be_watched(helm):
    result = helm.template(
        "--set", "watchNamespaces={team-a}", "--set", "gateway.admin.enabled=true"
    )
    assert result.returncode != 0
    assert f"gateway.admin.namespace {NAMESPACE} is not in watchNamespaces" in result.stderr
    result = helm.template(
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "gateway.admin.enabled=true",
        "--set",
        "gateway.admin.namespace=team-a",
    )
    assert result.returncode == 0, result.stderr


def test_chart_rbac_can_be_left_to_the_user(helm):
    result = helm.template(
        "--set",
        "operator.rbac.create=false",
        "--set",
        "gateway.rbac.create=false",
        "--set",
        "operator.serviceAccount.create=false",
        "--set",
        "operator.serviceAccount.name=ops",
    )
    assert result.returncode == 0, result.stderr
    objects = [o for o in yaml.safe_load_all(result.stdout) if o]
    assert not [
        o
        for o in objects
        if o["kind"] in {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    ]
    (operator,) = [
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    ]
    assert operator["spec"]["template"]["spec"]["serviceAccountName"] == "ops"
