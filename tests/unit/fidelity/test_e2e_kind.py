"""The kind end-to-end scenario (``e2e/kind/``) is checked here, where it cannot run.

Its manifests validate strictly against the oldest and newest Kubernetes we support, the
ClusterRole grants what the operator's client calls and no more, and ``run.sh`` passes
``bash -n`` (always) and shellcheck (where installed).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fidelity_support import SUPPORTED_KUBERNETES
from modelgrid_operator import api, k8s
from modelgrid_operator.settings import ENV_PREFIX, RenderSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
KIND = ROOT / "e2e" / "kind"
MANIFESTS = sorted((KIND / "manifests").glob("*.yaml"))


def _objects() -> list[dict[str, Any]]:
    return [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


def _one(kind: str) -> dict[str, Any]:
    (found,) = [o for o in _objects() if o["kind"] == kind]
    return found


def test_kind_manifests_exist():
    assert {o["kind"] for o in _objects()} == {
        "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment",
        "Role", "RoleBinding"}  # the Role: leader election's Lease


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
@pytest.mark.parametrize("path", MANIFESTS, ids=[p.name for p in MANIFESTS])
def test_kind_manifest_validates_strictly(path, version):
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            kubernetes_validate.validate(document, version, strict=True)


def test_kind_manifest_misspelling_is_caught():
    deployment = _one("Deployment")
    deployment["spec"]["template"]["spec"]["serviceAcountName"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError, match="serviceAcountName"):
        kubernetes_validate.validate(deployment, "1.37", strict=True)


def _grants() -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in _one("ClusterRole")["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def _client_calls() -> dict[tuple[str, str], set[str]]:
    """The verbs the operator's API client uses, read off its source."""
    source = Path(k8s.__file__).read_text()
    calls: dict[tuple[str, str], set[str]] = {}
    plurals = {"RAY_PLURAL": k8s.RAY_PLURAL, "RAY_CLUSTERS": k8s.RAY_CLUSTERS}
    ray_calls = [
        ("RAY_PLURAL", verb)
        for verb in re.findall(
            r"self\._rayservices\(\s*self\._custom\.(\w+?)_namespaced_custom_object", source
        )
    ]
    ray_calls += re.findall(
        r"self\._ray\(\s*(RAY_\w+),\s*self\._custom\.(\w+?)_namespaced_custom_object", source
    )
    ray_calls += [(name, "delete") for name in re.findall(r"self\._delete_ray\((RAY_\w+),", source)]
    for name, verb in ray_calls:
        calls.setdefault((k8s.RAY_GROUP, plurals[name]), set()).add(verb)
    for verb, resource in re.findall(r"self\._core\.(\w+?)_namespaced_(\w+)", source):
        calls.setdefault(("", resource + "s"), set()).add(verb)
    for verb, resource in re.findall(r"self\._core\.(\w+?)_(node)\b", source):
        calls.setdefault(("", resource + "s"), set()).add(verb)  # cluster-scoped: list_node
    for verb in re.findall(r"self\._networking\.(\w+?)_namespaced_network_policy\b", source):
        verb = "get" if verb == "read" else verb  # the typed client's "read" is RBAC's "get"
        calls.setdefault(("networking.k8s.io", "networkpolicies"), set()).add(verb)
    return calls


KOPF_NEEDS = {
    (api.GROUP, api.PLURAL): {"get", "list", "watch", "patch"},
    (api.GROUP, f"{api.PLURAL}/status"): {"get", "patch"},
    ("", "events"): {"create"},
    ("", "pods"): {"list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("ray.io", "rayservices"): {"list", "watch"},
    ("ray.io", "rayclusters"): {"list", "watch"},
    ("networking.k8s.io", "networkpolicies"): {"list", "watch"},
    ("", "nodes"): {"list", "watch"},
}
"""What kopf itself does: watch the model, patch finalizers, annotations and status, post
Events, notice CRDs that appear later, and list and watch everything a reconcile reads
(``handlers.CHILDREN`` and the nodes: the operator's indexes)."""


def _needed() -> dict[tuple[str, str], set[str]]:
    needed = {key: set(verbs) for key, verbs in KOPF_NEEDS.items()}
    for key, verbs in _client_calls().items():
        needed.setdefault(key, set()).update(verbs)
    return needed


def test_kind_clusterrole_grants_what_the_operator_calls():
    assert _client_calls(), "no client calls found in k8s.py: the patterns above need updating"
    grants = _grants()
    for key, verbs in _needed().items():
        assert verbs <= grants.get(key, set()), f"{key}: needs {verbs}, granted {grants.get(key)}"


def test_kind_clusterrole_grants_nothing_more():
    assert _grants() == _needed()
    assert "*" not in yaml.safe_dump(_one("ClusterRole"))


def test_kind_operator_runs_as_the_bound_service_account():
    account = _one("ServiceAccount")["metadata"]
    binding = _one("ClusterRoleBinding")
    deployment = _one("Deployment")
    assert binding["roleRef"]["name"] == _one("ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}]
    assert deployment["metadata"]["namespace"] == account["namespace"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["name"]


def test_kind_leader_election_role_grants_exactly_the_lease_calls():
    """leadership.py reads, creates and replaces its Lease (the library's LeaseLock, and the
    release of it); the Role grants those verbs, get and update on that one Lease only."""
    from modelgrid_cli.main import build_parser
    from modelgrid_operator.leadership import _LeaseRequests

    verbs = {"read": "get", "create": "create", "replace": "update"}
    called = {verbs[name.split("_")[0]] for name in vars(_LeaseRequests) if "lease" in name}
    role = _one("Role")
    granted = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert granted == called == {"get", "create", "update"}
    command = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]["command"]
    args = build_parser().parse_args(command[1:])
    assert args.leader_elect and args.lease_namespace == role["metadata"]["namespace"]
    for rule in role["rules"]:
        assert rule["apiGroups"] == ["coordination.k8s.io"] and rule["resources"] == ["leases"]
        if rule["verbs"] != ["create"]:  # create cannot be limited by name
            assert rule["resourceNames"] == [args.lease_name]
    binding = _one("RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == _one("ServiceAccount")["metadata"]["name"]


def test_kind_operator_image_and_settings_match_run_sh():
    script = (KIND / "run.sh").read_text()
    (image,) = re.findall(r'^IMAGE="([^"]+)"', script, re.MULTILINE)
    container = _one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == image
    assert container["imagePullPolicy"] == "Never"  # loaded into kind, never pulled
    assert container["command"][:2] == ["modelgrid", "operator"]
    for variable in container["env"]:
        name = variable["name"].removeprefix(ENV_PREFIX).lower()
        assert name in RenderSettings.model_fields, variable["name"]
        assert variable["value"] == image


def test_kind_dockerfile_copies_paths_that_exist():
    sources = re.findall(r"^COPY (.+) \S+$", (KIND / "Dockerfile").read_text(), re.MULTILINE)
    paths = [p for line in sources for p in line.split()]
    assert paths and all((ROOT / p).exists() for p in paths), paths


def test_kind_run_sh_parses_with_bash_n():
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to check e2e/kind/run.sh"
    result = subprocess.run([bash, "-n", str(KIND / "run.sh")], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_kind_run_sh_passes_shellcheck():
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck); bash -n still ran")
    result = subprocess.run([shellcheck, "--severity=style", str(KIND / "run.sh")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kind_run_sh_applies_the_committed_crd_and_the_cpu_example():
    script = (KIND / "run.sh").read_text()
    assert '"$ROOT/crds/"' in script
    assert 'MODEL_FILE="$ROOT/examples/cpu-tiny.yaml"' in script
    (name,) = re.findall(r'^MODEL="([^"]+)"', script, re.MULTILINE)
    example = yaml.safe_load((ROOT / "examples" / "cpu-tiny.yaml").read_text())
    assert example["metadata"]["name"] == name
