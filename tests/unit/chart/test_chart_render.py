"""The chart lints and renders for every values set, and what it renders is what a cluster takes.

Every rendered object validates strictly (unknown fields are errors) against the oldest and
newest Kubernetes we support; Prometheus Operator kinds, which kubernetes-validate has no
schema for, are checked in test_chart_monitoring.py. Pods run non-root with a read-only root
file system, no capabilities and the runtime's seccomp profile.
"""

from __future__ import annotations

import base64
import hashlib
import posixpath
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import CHART, NAMESPACE, VALUE_SETS, Rendered, values_args
from fidelity_support import SUPPORTED_KUBERNETES
from modelgrid_operator import __version__

pytestmark = pytest.mark.unit

PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com/"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_lints(helm, name):
    result = helm.run("lint", str(CHART), "--strict", *values_args(name))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_objects_validate_strictly(rendered, name, version):
    checked = 0
    for obj in rendered[name].objects:
        if obj["apiVersion"].startswith(PROMETHEUS_OPERATOR_GROUP):
            continue
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 8, f"{name}: only {checked} objects rendered"


def test_chart_strict_validation_catches_a_misspelling(rendered):
    deployment = rendered["default"].one("Deployment", "gateway")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, "1.37", strict=True)


def test_chart_default_objects(rendered):
    kinds = sorted(o["kind"] for o in rendered["default"].objects)
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",  # operator
            "NetworkPolicy",
            "PodDisruptionBudget",  # its two replicas
            "Role",
            "RoleBinding",  # its leader election's Lease
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",  # gateway
            "Secret",
            "ConfigMap",
            "Deployment",
            "NetworkPolicy",
            "Service",
            "Service",  # headless: the replicas find each other to share key limits
            "Secret",  # their peer secret
        ]
    )


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_namespaced_objects_live_in_the_release_namespace(rendered, name):
    watched = set(yaml.safe_load((CHART / "values.yaml").read_text())["watchNamespaces"])
    if name != "default":
        overrides = yaml.safe_load((CHART / "ci" / f"{name}.yaml").read_text())
        watched = set(overrides.get("watchNamespaces", watched))
        admin = overrides.get("gateway", {}).get("admin", {})
        if admin.get("enabled") and admin.get("namespace"):
            watched.add(admin["namespace"])  # where the admin API's models go
    for obj in rendered[name].objects:
        if obj["kind"] in {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}:
            assert "namespace" not in obj["metadata"], obj["metadata"]
        elif obj["kind"] in {"Role", "RoleBinding"}:
            assert obj["metadata"]["namespace"] in watched | {NAMESPACE}, obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_objects_carry_the_standard_labels(rendered, name):
    for obj in rendered[name].objects:
        if obj["kind"] == "CustomResourceDefinition":
            continue  # the generated file, shipped byte for byte
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "modelgrid"
        assert labels["app.kubernetes.io/instance"] == "mg"
        assert labels["app.kubernetes.io/version"] == __version__
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/part-of"] == "modelgrid"
        assert labels["app.kubernetes.io/component"]
        assert labels["helm.sh/chart"] == "modelgrid-0.1.0"


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_selectors_match_their_pods(rendered, name):
    pods = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d["spec"]["template"]
        for d in rendered[name].by_kind["Deployment"]
    }
    selected = [
        (d["spec"]["selector"]["matchLabels"], d["metadata"]["labels"])
        for d in rendered[name].by_kind["Deployment"]
    ]
    selected += [
        (o["spec"]["selector"], pods["gateway"]["metadata"]["labels"])
        for o in rendered[name].by_kind.get("Service", [])
    ]
    selected += [
        (
            o["spec"]["selector"]["matchLabels"],
            pods[o["metadata"]["labels"]["app.kubernetes.io/component"]]["metadata"]["labels"],
        )
        for o in rendered[name].by_kind.get("PodDisruptionBudget", [])
    ]
    selected += [
        (o["spec"]["podSelector"]["matchLabels"], o["metadata"]["labels"])
        for o in rendered[name].by_kind.get("NetworkPolicy", [])
    ]
    for selector, labels in selected:
        assert selector.items() <= labels.items(), (selector, labels)
        assert "app.kubernetes.io/version" not in selector  # selectors are immutable


@pytest.mark.parametrize("name", VALUE_SETS)
def test_chart_pods_are_locked_down(rendered, name):
    for deployment in rendered[name].by_kind["Deployment"]:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 10000  # no user of the node's own
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["serviceAccountName"]
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
            assert container["resources"]["requests"]
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
            assert "livenessProbe" in container and "readinessProbe" in container


API_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount"


def _token_mounts(deployment: dict[str, Any]) -> list[str]:
    """The containers of a Deployment that mount the service account token."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    found = []
    for container in pod["containers"]:
        for mount in container.get("volumeMounts", []):
            if mount["mountPath"] == API_TOKEN:
                sources = volumes[mount["name"]]["projected"]["sources"]
                assert sources[0]["serviceAccountToken"]["path"] == "token"
                assert mount["readOnly"] is True
                found.append(container["name"])
    return found


def test_chart_api_token_only_where_the_api_is_called(rendered, helm):
    """The operator and a gateway with --kubernetes call the API; a gateway without does not."""
    for account in rendered["default"].by_kind["ServiceAccount"]:
        assert account["automountServiceAccountToken"] is False, account["metadata"]["name"]
    assert _token_mounts(rendered["default"].one("Deployment", "operator")) == ["operator"]
    assert _token_mounts(rendered["default"].one("Deployment", "gateway")) == ["gateway"]
    result = helm.template(
        "--show-only",
        "templates/gateway-deployment.yaml",
        "--set",
        "gateway.args={--port=8080,--config=/etc/modelgrid/gateway.yaml}",
    )
    assert result.returncode == 0, result.stderr
    assert _token_mounts(yaml.safe_load(result.stdout)) == []
    result = helm.template(
        "--show-only",
        "templates/gateway-deployment.yaml",
        "--set",
        "gateway.args={--port=8080}",
        "--set",
        "gateway.extraArgs={--kubernetes}",
    )
    assert result.returncode == 0, result.stderr
    assert _token_mounts(yaml.safe_load(result.stdout)) == ["gateway"]


def test_chart_network_policies_admit_only_the_served_ports(rendered):
    default, full = rendered["default"], rendered["full-values"]
    operator = default.one("NetworkPolicy", "operator")["spec"]
    assert operator["policyTypes"] == ["Ingress"]
    assert operator["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}]}]
    gateway = default.one("NetworkPolicy", "gateway")["spec"]
    assert [rule["ports"][0]["port"] for rule in gateway["ingress"]] == ["http", "metrics"]
    assert all("from" not in rule for rule in gateway["ingress"])  # defaults: any source
    # Named peers: the gateway's own replicas stay admitted to the API port (shared limits).
    named = full.one("NetworkPolicy", "gateway")["spec"]
    api, metrics = named["ingress"]
    assert api["from"][-1] == {"podSelector": named["podSelector"]}
    assert api["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert metrics["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    # Each port a policy names is a port its pods declare (a gateway without a port named
    # "metrics" serves its metrics on the API port).
    for name in ("default", "full-values"):
        for component, optional in (("operator", set()), ("gateway", {"metrics"})):
            pod = rendered[name].one("Deployment", component)["spec"]["template"]["spec"]
            declared = {p["name"] for c in pod["containers"] for p in c.get("ports", [])}
            policy = rendered[name].one("NetworkPolicy", component)["spec"]
            named = {port["port"] for rule in policy["ingress"] for port in rule["ports"]}
            assert named - optional <= declared, (name, component, named, declared)


def test_chart_operator_runs_the_cli_with_its_flags(rendered):
    from modelgrid_cli.main import build_parser

    for name in VALUE_SETS:
        container = rendered[name].one("Deployment", "operator")["spec"]["template"]["spec"][
            "containers"
        ][0]
        command = container["command"]
        assert command[:2] == ["modelgrid", "operator"]
        args = build_parser().parse_args(command[1:])  # the real CLI accepts every flag
        port = container["ports"][0]["containerPort"]
        assert args.health_port == port
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_chart_operator_watches_the_namespaces_it_is_given(rendered):
    from modelgrid_cli.main import build_parser

    command = rendered["namespaced-values"].one("Deployment", "operator")["spec"]["template"][
        "spec"
    ]["containers"][0]["command"]
    assert build_parser().parse_args(command[1:]).namespace == ["team-a", "team-b"]
    default = rendered["default"].one("Deployment", "operator")["spec"]["template"]["spec"]
    assert build_parser().parse_args(default["containers"][0]["command"][1:]).namespace is None


def test_chart_operator_settings_become_modelgrid_variables(rendered):
    from modelgrid_operator.settings import from_env

    container = rendered["namespaced-values"].one("Deployment", "operator")["spec"]["template"][
        "spec"
    ]["containers"][0]
    env = {v["name"]: v["value"] for v in container["env"]}
    settings = from_env(env)  # what the operator will read at start
    assert settings.cpu_image == "registry.example.com/modelgrid/serving:0.1.0-cpu"
    assert settings.cuda_image == "registry.example.com/modelgrid/serving:0.1.0-cuda"
    assert settings.mlx_port == 8091
    assert env["TZ"] == "UTC"


def test_chart_images_default_to_the_release(rendered):
    for component in ("operator", "gateway"):
        pod = rendered["default"].one("Deployment", component)["spec"]["template"]["spec"]
        assert pod["containers"][0]["image"] == f"ghcr.io/modelgrid/modelgrid:{__version__}"
        private = rendered["namespaced-values"].one("Deployment", component)
        private_pod = private["spec"]["template"]["spec"]
        assert (
            private_pod["containers"][0]["image"]
            == "registry.example.com/modelgrid/modelgrid:0.1.0"
        )
        assert private_pod["imagePullSecrets"] == [{"name": "registry-credentials"}]


def _gateway(objects: Rendered) -> dict[str, Any]:
    return objects.one("Deployment", "gateway")["spec"]["template"]["spec"]


def _gateway_config(objects: Rendered) -> dict[str, Any]:
    return yaml.safe_load(objects.one("ConfigMap", "gateway")["data"]["config.yaml"])


def _keys_file(secret: dict[str, Any], entry: str) -> dict[str, Any]:
    return yaml.safe_load(base64.b64decode(secret["data"][entry]))


def test_chart_gateway_command_line(rendered):
    pod = _gateway(rendered["default"])
    container = pod["containers"][0]
    assert container["command"] == ["modelgrid", "gateway"]  # it hands the admin API its check
    assert container["args"] == [
        "--kubernetes",
        "--host=0.0.0.0",
        "--port=8080",
        "--metrics-port=9090",
        "--config=/etc/modelgrid/gateway/config.yaml",
    ]
    assert container["ports"] == [
        {"name": "http", "containerPort": 8080},
        {"name": "metrics", "containerPort": 9090},
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert {"name": "config", "mountPath": "/etc/modelgrid/gateway", "readOnly": True} in (
        container["volumeMounts"]
    )
    config_map = rendered["default"].one("ConfigMap", "gateway")
    assert {"name": "config", "configMap": {"name": config_map["metadata"]["name"]}} in (
        pod["volumes"]
    )
    args = _gateway(rendered["namespaced-values"])["containers"][0]["args"]
    assert args[-2:] == ["--namespace=team-a", "--namespace=team-b"]


def test_chart_gateway_config_points_at_the_keys_secret(rendered):
    secret = rendered["default"].keys_secret()
    assert _gateway_config(rendered["default"]) == {
        "auth": {
            "enabled": True,
            "secret_name": secret["metadata"]["name"],
            "secret_key": "keys.yaml",
        },
        "limits": {"peers": {"dns": f"mg-modelgrid-gateway-peers.{NAMESPACE}.svc:8080"}},
    }
    merged = _gateway_config(rendered["namespaced-values"])
    assert merged["limits"]["read_timeout_s"] == 900  # gateway.config, merged over auth
    assert merged["auth"]["secret_name"] == "mg-modelgrid-gateway-api-keys"


def test_chart_gateway_rolls_when_its_config_changes(rendered):
    sums = {
        name: rendered[name].one("Deployment", "gateway")["spec"]["template"]["metadata"][
            "annotations"
        ]["checksum/config"]
        for name in ("default", "namespaced-values")
    }
    assert len(set(sums.values())) == 2 and all(len(v) == 64 for v in sums.values())


def test_chart_gateway_without_keys(helm):
    result = helm.template("--set", "gateway.apiKeys.enabled=false")
    assert result.returncode == 0, result.stderr
    objects = Rendered(
        "no-keys", result.stdout, [o for o in yaml.safe_load_all(result.stdout) if o]
    )
    gateway_objects = [
        o
        for o in objects.objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "gateway"
    ]
    assert not [o for o in gateway_objects if o["kind"] in {"Secret", "Role", "RoleBinding"}]
    assert _gateway_config(objects)["auth"] == {"enabled": False}
    gateway = objects.one("Deployment", "gateway")
    assert "env" not in gateway["spec"]["template"]["spec"]["containers"][0]  # no peer secret


def test_chart_only_crds_when_both_components_are_off(helm):
    result = helm.template(
        "--include-crds", "--set", "operator.enabled=false", "--set", "gateway.enabled=false"
    )
    assert result.returncode == 0, result.stderr
    kinds = [o["kind"] for o in yaml.safe_load_all(result.stdout) if o]
    assert kinds == ["CustomResourceDefinition"]


def test_chart_ingress_with_tls(rendered):
    ingress = rendered["ingress-tls-values"].one("Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["llm.example.com"], "secretName": "mg-modelgrid-gateway-tls"}
    ]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "llm.example.com"
    backend = rule["http"]["paths"][0]["backend"]["service"]
    service = rendered["ingress-tls-values"].one("Service", "gateway")
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"
    assert "Ingress" not in rendered["default"].by_kind


def test_chart_hpa_and_pdb(rendered):
    objects = rendered["hpa-pdb-values"]
    hpa = objects.one("HorizontalPodAutoscaler")
    gateway = objects.one("Deployment", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": gateway["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    targets = {
        m["resource"]["name"]: m["resource"]["target"]["averageUtilization"]
        for m in hpa["spec"]["metrics"]
    }
    assert targets == {"cpu": 60, "memory": 80}
    assert "replicas" not in gateway["spec"]  # the HPA owns the count
    pdb = objects.one("PodDisruptionBudget", "gateway")
    assert pdb["spec"]["minAvailable"] == "50%" and "maxUnavailable" not in pdb["spec"]
    assert "HorizontalPodAutoscaler" not in rendered["default"].by_kind
    assert [
        o["metadata"]["labels"]["app.kubernetes.io/component"]
        for o in rendered["default"].by_kind["PodDisruptionBudget"]
    ] == ["operator"]  # the gateway's is opt-in; the operator's comes with its two replicas


def test_chart_api_keys_from_an_existing_secret(rendered):
    objects = rendered["existing-secret-values"]
    # the user's keys Secret, not ours: only the gateways' peer secret is made
    assert [s["metadata"]["name"] for s in objects.by_kind["Secret"]] == [
        "mg-modelgrid-gateway-peer"
    ]
    assert _gateway_config(objects)["auth"] == {
        "enabled": True,
        "secret_name": "llm-api-keys",
        "secret_key": "team.keys.yaml",
    }
    role = [r for r in objects.by_kind["Role"] if r["metadata"]["name"].endswith("-api-keys")]
    assert role[0]["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": ["llm-api-keys"],
            "verbs": ["list", "watch"],
        }
    ]


def test_chart_made_secret_holds_the_given_key_hashes(rendered):
    secret = rendered["namespaced-values"].keys_secret()
    assert set(secret["data"]) == {"keys.yaml"}  # hashes only, no key in clear
    keys = _keys_file(secret, "keys.yaml")["keys"]
    assert [k["name"] for k in keys] == ["team-a", "team-b"]
    assert keys[0]["sha256"] == hashlib.sha256(b"sk-team-a-0123456789abcdef").hexdigest()
    assert keys[0]["models"] == ["tiny-chat"] and keys[1]["tokens_per_minute"] == 100000


def test_chart_made_secret_generates_a_key(rendered):
    secret = rendered["default"].keys_secret()
    key = base64.b64decode(secret["data"]["api-key"]).decode()
    assert key.startswith("sk-mg-") and len(key) == 46
    (entry,) = _keys_file(secret, "keys.yaml")["keys"]
    assert entry == {"name": "admin", "sha256": hashlib.sha256(key.encode()).hexdigest()}


def test_chart_gateway_replicas_share_key_limits(rendered, helm):
    objects = rendered["default"]
    (peers,) = [s for s in objects.by_kind["Service"] if s["spec"].get("clusterIP") == "None"]
    gateway = objects.one("Deployment", "gateway")
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    assert peers["spec"]["selector"].items() <= pod_labels.items()
    (port,) = peers["spec"]["ports"]
    dns = _gateway_config(objects)["limits"]["peers"]["dns"]
    assert dns == f"{peers['metadata']['name']}.{NAMESPACE}.svc:{port['port']}"
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert port["port"] == container["ports"][0]["containerPort"]
    # The secret reaches the gateway as a file (a mounted Secret), never as a variable's value.
    assert not [e for e in container["env"] if e["name"] == "MODELGRID_GATEWAY_PEER_SECRET"]
    (env,) = [e for e in container["env"] if e["name"] == "MODELGRID_GATEWAY_PEER_SECRET_FILE"]
    folder = posixpath.dirname(env["value"])
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == folder]
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    (volume,) = [v["secret"] for v in volumes if v["name"] == mount["name"]]
    (item,) = volume["items"]
    assert env["value"] == f"{mount['mountPath']}/{item['path']}" and mount["readOnly"] is True
    assert volume["defaultMode"] == 0o440
    (secret,) = [
        s for s in objects.by_kind["Secret"] if s["metadata"]["name"] == volume["secretName"]
    ]
    assert len(base64.b64decode(secret["data"][item["key"]])) == 40

    result = helm.template("--set", "gateway.sharedLimits=false")
    assert result.returncode == 0, result.stderr
    alone = Rendered("alone", result.stdout, [o for o in yaml.safe_load_all(result.stdout) if o])
    assert "limits" not in _gateway_config(alone)
    assert len(alone.by_kind["Service"]) == 1 and len(alone.by_kind["Secret"]) == 1


def test_chart_operator_runs_two_replicas_under_leader_election(rendered):
    from modelgrid_cli.main import build_parser
    from modelgrid_cli.operator import _election

    objects = rendered["default"]
    deployment = objects.one("Deployment", "operator")
    assert deployment["spec"]["replicas"] == 2
    assert "strategy" not in deployment["spec"]  # rolling: the new pod starts as a candidate
    command = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    election = _election(build_parser().parse_args(command[1:]))
    assert (election.namespace, election.name) == (NAMESPACE, deployment["metadata"]["name"])
    assert (election.lease_seconds, election.renew_seconds, election.retry_seconds) == (15, 10, 2)
    pdb = objects.one("PodDisruptionBudget", "operator")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]


def test_chart_operator_without_leader_election_is_one_replaced_pod(helm):
    result = helm.template(
        "--set", "operator.leaderElection.enabled=false", "--set", "operator.replicas=1"
    )
    assert result.returncode == 0, result.stderr
    objects = Rendered(
        "no-election", result.stdout, [o for o in yaml.safe_load_all(result.stdout) if o]
    )
    deployment = objects.one("Deployment", "operator")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert (
        "--leader-elect" not in deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    )
    assert "PodDisruptionBudget" not in objects.by_kind


@pytest.mark.parametrize(
    ("values", "says"),
    [
        (
            ["operator.leaderElection.enabled=false"],
            "operator.replicas is 2 without operator.leaderElection.enabled",
        ),
        (
            ["operator.leaderElection.leaseDurationSeconds=10"],
            "leaseDurationSeconds (10) must exceed renewDeadlineSeconds (10)",
        ),
        (
            ["operator.leaderElection.retryPeriodSeconds=9"],
            "renewDeadlineSeconds (10) must exceed 1.2 x retryPeriodSeconds (9)",
        ),
        (
            ["operator.podDisruptionBudget.minAvailable=1"],
            "operator.podDisruptionBudget: set exactly one of minAvailable and maxUnavailable",
        ),
    ],
)
def test_chart_refuses_an_operator_election_that_could_write_twice(helm, values, says):
    result = helm.template(*[arg for value in values for arg in ("--set", value)])
    assert result.returncode != 0
    assert says in result.stderr
