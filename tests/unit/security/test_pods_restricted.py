"""A tenant's model runs in pods that pass Pod Security "restricted", whatever the tenant wrote.

Trigger (issue 15): no rendered pod (head, workers, MLX sidecar, init container) had a
``securityContext``. Every example and every model source is rendered here and every pod of it
checked, container by container, by the pure checker in ``pss.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from factories import make_model, pool
from fidelity_support.admission import admit, crd_schema
from fidelity_support.kuberay import RAYSERVICES, kuberay_crd
from fidelity_support.openapi import schema_errors
from modelgrid_cli.main import main
from modelgrid_operator.render import render_rayservices
from modelgrid_operator.render.security import HOME_PATH
from modelgrid_operator.settings import RenderSettings
from pss import restricted_violations
from rendered import pool_rayservice

pytestmark = [pytest.mark.unit, pytest.mark.security]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

SOURCES = {
    "huggingface": "org/demo-1b",
    "hf-scheme": "hf://org/demo-1b",
    "s3": "s3://bucket/demo",
    "gcs": "gs://bucket/demo",
    "pvc": "pvc://models/demo",
    "builtin": "builtin://tiny-llama",
}
ACCELERATORS = ("nvidia", "cpu", "apple")


def pod_templates(rayservice: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    return [("head", cluster["headGroupSpec"]["template"])] + [
        (group["groupName"], group["template"]) for group in cluster["workerGroupSpecs"]
    ]


def violations(rayservice: dict[str, Any]) -> dict[str, list[str]]:
    found = {name: restricted_violations(t["spec"]) for name, t in pod_templates(rayservice)}
    return {name: problems for name, problems in found.items() if problems}


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_pods_restricted_every_example_as_modelgrid_render_prints_it(example, capsys):
    assert main(["render", str(example)]) == 0
    rayservices = [
        d for d in yaml.safe_load_all(capsys.readouterr().out) if d["kind"] == "RayService"
    ]
    assert rayservices
    for rayservice in rayservices:
        assert violations(rayservice) == {}


@pytest.mark.parametrize("accelerator", ACCELERATORS)
@pytest.mark.parametrize("uri", SOURCES.values(), ids=list(SOURCES))
def test_pods_restricted_every_source_on_every_accelerator(uri, accelerator):
    model = make_model(
        model={"uri": uri},
        engine="auto",
        pools=[pool("p", accelerator, minReplicas=1, maxReplicas=3)],
    )
    rayservice = pool_rayservice(model, settings=RenderSettings())
    assert violations(rayservice) == {}
    if uri.startswith("builtin://"):  # the init container that generates the model, too
        worker = pod_templates(rayservice)[1][1]["spec"]
        assert [c["name"] for c in worker["initContainers"]] == ["generate-model"]


def test_pods_restricted_numeric_ids_come_from_settings():
    settings = RenderSettings(run_as_user=2000, run_as_group=3000, fs_group=4000)
    rayservice = pool_rayservice(make_model(), settings=settings)
    for _, template in pod_templates(rayservice):
        context = template["spec"]["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"], context["fsGroup"]) == (
            2000,
            3000,
            4000,
        )


def test_pods_restricted_default_ids_are_no_users_of_the_node():
    """Above 10000 (checkov CKV_K8S_40), like the chart's own pods: a uid the node's own users
    (1000 is the first login user of most distributions) do not have, so a container breakout
    or a shared hostPath owns nothing of theirs."""
    rayservice = pool_rayservice(make_model(), settings=RenderSettings())
    for name, template in pod_templates(rayservice):
        context = template["spec"]["securityContext"]
        assert min(context["runAsUser"], context["runAsGroup"], context["fsGroup"]) > 10000, name


def test_pods_restricted_engines_write_only_to_emptydirs():
    """Ray's session dir (/tmp/ray), vLLM's sockets (/tmp) and caches ($HOME, XDG) are
    writable volumes in every container; the root file system is read-only."""
    model = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")], engine="auto")
    templates = [
        t for rs in render_rayservices(model, settings=RenderSettings()) for t in pod_templates(rs)
    ]
    for _, template in templates:
        spec = template["spec"]
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts["/tmp"] in empty_dirs and mounts[HOME_PATH] in empty_dirs
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env["HOME"] == HOME_PATH
            assert env["XDG_CACHE_HOME"].startswith(HOME_PATH + "/")
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_pods_restricted_autoscaler_sidecar_is_hardened_and_kuberay_accepts_it():
    """KubeRay adds the autoscaler to the head from autoscalerOptions; it must pass too."""
    model = make_model(pools=[pool("gpu", "nvidia", minReplicas=0, maxReplicas=4)])
    rayservice = pool_rayservice(model, settings=RenderSettings())
    options = rayservice["spec"]["rayClusterConfig"]["autoscalerOptions"]
    sidecar = {"name": "autoscaler", "securityContext": options["securityContext"]}
    head = pod_templates(rayservice)[0][1]["spec"]
    assert restricted_violations({**head, "containers": [sidecar]}) == []
    schema = crd_schema(kuberay_crd(RAYSERVICES), "v1")
    assert schema_errors(rayservice, schema, strict=True) == []
    assert admit(rayservice, schema).pruned == []


# The checker itself must catch what it is for. ---------------------------------------------


def test_pss_checker_refuses_a_pod_without_security_context():
    spec = {"containers": [{"name": "ray-worker", "image": "x"}]}
    problems = restricted_violations(spec)
    assert "container ray-worker: allowPrivilegeEscalation must be false" in problems
    assert "container ray-worker: capabilities must drop ALL" in problems
    assert any("runAsNonRoot" in p for p in problems)
    assert any("seccompProfile" in p for p in problems)


def test_pss_checker_refuses_host_path_host_network_and_root():
    rayservice = pool_rayservice(make_model(), settings=RenderSettings())
    spec = pod_templates(rayservice)[1][1]["spec"]
    assert restricted_violations(spec) == []
    spec = {
        **spec,
        "hostNetwork": True,
        "volumes": [*spec["volumes"], {"name": "node", "hostPath": {"path": "/"}}],
        "securityContext": {**spec["securityContext"], "runAsUser": 0},
    }
    problems = restricted_violations(spec)
    assert "pod: hostNetwork must not be true" in problems
    assert "volume node: type ['hostPath'] is not allowed" in problems
    assert "pod: runAsUser must not be 0" in problems


def test_pss_checker_names_an_allowed_host_path_as_the_one_exception():
    """An operator that allows node paths takes those pods out of "restricted": the render says so
    by the one volume the checker names, and nothing else."""
    settings = RenderSettings(allowed_host_paths=("/models",))
    model = make_model(model={"uri": "/models/demo"}, pools=[pool("cpu", "cpu")])
    found = violations(pool_rayservice(model, settings=settings))
    assert found == {"cpu": ["volume model: type ['hostPath'] is not allowed"]}
