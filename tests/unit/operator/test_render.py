"""Renderers tested as data: render, then assert on fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from factories import make_model, pool
from modelgrid_operator.render import (
    pool_endpoint,
    render_rayservice,
    serve_endpoint,
    to_local_run,
)
from modelgrid_operator.settings import RenderSettings, from_env
from modelgrid_operator.validation import load_models

pytestmark = pytest.mark.unit

SETTINGS = RenderSettings()
OWNER = {"name": "demo", "uid": "1234"}
EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


def _groups(rs: dict) -> dict[str, dict]:
    return {g["groupName"]: g for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]}


def _apps(rs: dict) -> list[dict]:
    return yaml.safe_load(rs["spec"]["serveConfigV2"])["applications"]


def _app(rs: dict) -> dict:
    return _apps(rs)[0]


def test_render_every_example_has_one_group_per_pool():
    assert len(EXAMPLES) >= 4
    for path in EXAMPLES:
        for model in load_models(path):
            rs = render_rayservice(model, settings=SETTINGS)
            assert rs["kind"] == "RayService" and rs["apiVersion"] == "ray.io/v1"
            assert list(_groups(rs)) == [p.name for p in model.spec.pools], path


def test_render_nvidia_pool_requests_tp_times_pp_gpus():
    model = make_model(engineArgs={"tensorParallelSize": 4, "pipelineParallelSize": 2})
    group = _groups(render_rayservice(model, settings=SETTINGS))["gpu"]
    container = group["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert group["rayStartParams"]["num-gpus"] == "8"
    assert group["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in group[
        "template"
    ]["spec"]["tolerations"]
    assert container["image"] == SETTINGS.cuda_image


def test_render_apple_pool_has_mlx_sidecar_and_selects_apple_nodes():
    model = make_model(
        engine="mlx",
        model={"uri": "pvc://models/qwen"},
        pools=[pool("mac", "apple", resources={"requests": {"memory": "24Gi"}})],
    )
    spec = _groups(render_rayservice(model, settings=SETTINGS))["mac"]["template"]["spec"]
    names = [c["name"] for c in spec["containers"]]
    assert names == ["ray-worker", "mlx-server"]
    sidecar = spec["containers"][1]
    assert sidecar["args"][:2] == ["--model", "/models/models/qwen"]
    assert sidecar["resources"]["requests"]["memory"] == "24Gi"
    assert spec["nodeSelector"]["kubernetes.io/arch"] == "arm64"
    assert spec["nodeSelector"][SETTINGS.apple_node_label] == "apple"
    assert spec["tolerations"][0]["key"] == SETTINGS.apple_tolerations_key
    assert "nvidia.com/gpu" not in json.dumps(spec)


@pytest.mark.parametrize(
    "uri", ["pvc://models/qwen", "builtin://tiny-llama", "hf://Qwen/Qwen3-0.6B"]
)
def test_render_apple_replica_sees_the_model_where_its_app_config_says(uri):
    """The MLX replica reads the tokenizer at the app's ``model_source``, as the sidecar does."""
    model = make_model(engine="mlx", model={"uri": uri}, pools=[pool("mac", "apple")])
    rs = render_rayservice(model, settings=SETTINGS)
    (app,) = _apps(rs)
    source = app["args"]["model_source"]
    spec = _groups(rs)["mac"]["template"]["spec"]
    for container in spec["containers"]:
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        if source.startswith("/"):
            assert any(source.startswith(m.rstrip("/") + "/") or source == m for m in mounts), (
                container["name"],
                source,
                mounts,
            )
    sidecar = spec["containers"][1]
    health = f"http://127.0.0.1:{SETTINGS.mlx_port}/health"
    for probe in ("readinessProbe", "livenessProbe"):
        assert health in sidecar[probe]["exec"]["command"][-1]


def test_render_mixed_pools_pin_replicas_by_custom_resource():
    model = make_model(pools=[pool("gpu", "nvidia", maxReplicas=4), pool("mac", "apple")])
    rs = render_rayservice(model, settings=SETTINGS)
    groups = _groups(rs)
    pools = {app["args"]["pool"]["name"]: app["args"]["pool"] for app in _apps(rs)}
    for name in ("gpu", "mac"):
        resources = json.loads(json.loads(groups[name]["rayStartParams"]["resources"]))
        assert resources == {pools[name]["ray_resource"]: 1}
    assert (pools["gpu"]["engine"], pools["mac"]["engine"]) == ("vllm", "mlx")
    assert pools["mac"]["mlx_server_url"] == f"http://127.0.0.1:{SETTINGS.mlx_port}"
    assert rs["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    assert (groups["gpu"]["minReplicas"], groups["gpu"]["maxReplicas"]) == (1, 4)


def test_render_one_pool_is_one_application_at_root_named_after_the_model():
    model = make_model()
    (app,) = _apps(render_rayservice(model, settings=SETTINGS))
    assert (app["name"], app["route_prefix"]) == ("demo", "/")
    assert app["args"]["pool"]["name"] == "gpu"
    assert pool_endpoint(model, model.spec.pools[0], SETTINGS) == (
        "http://demo-serve-svc.ml.svc:8000"
    )
    assert serve_endpoint(model, SETTINGS) == "http://demo-serve-svc.ml.svc:8000/v1"


def test_render_each_pool_of_several_is_its_own_application_under_pools_prefix():
    model = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")])
    apps = _apps(render_rayservice(model, settings=SETTINGS))
    assert [(a["name"], a["route_prefix"]) for a in apps] == [
        ("demo-gpu", "/pools/gpu"),
        ("demo-mac", "/pools/mac"),
    ]
    for app, name in zip(apps, ("gpu", "mac"), strict=True):
        assert app["import_path"] == "modelgrid_serving.app:build_app"
        assert app["args"]["pool"]["name"] == name  # one pool per application
        assert app["args"]["model_name"] == "demo"
    assert [pool_endpoint(model, p, SETTINGS) for p in model.spec.pools] == [
        "http://demo-serve-svc.ml.svc:8000/pools/gpu",
        "http://demo-serve-svc.ml.svc:8000/pools/mac",
    ]
    assert serve_endpoint(model, SETTINGS) == "http://demo-serve-svc.ml.svc:8000/pools/gpu/v1"


def test_render_left_out_pool_has_no_group_and_no_application_and_names_stay():
    model = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")])
    rs = render_rayservice(model, settings=SETTINGS, pools=["mac"])
    assert list(_groups(rs)) == ["mac"]
    assert [(a["name"], a["route_prefix"]) for a in _apps(rs)] == [("demo-mac", "/pools/mac")]
    assert serve_endpoint(model, SETTINGS, pools=["mac"]).endswith("/pools/mac/v1")


def test_render_serve_config_deploys_modelgrid_app_with_names():
    model = make_model(
        servedModelName="llama", aliases=["gpt-4o"], serving={"maxConcurrentRequests": 10}
    )
    app = _app(render_rayservice(model, settings=SETTINGS))
    assert app["import_path"] == "modelgrid_serving.app:build_app"
    assert app["args"]["model_name"] == "llama"
    assert app["args"]["aliases"] == ["gpt-4o"]
    assert app["args"]["max_ongoing_requests"] == 10
    assert app["args"]["target_ongoing_requests"] == 5


def test_render_owner_reference_only_when_owner_known():
    model = make_model()
    assert "ownerReferences" not in render_rayservice(model, settings=SETTINGS)["metadata"]
    refs = render_rayservice(model, settings=SETTINGS, owner=OWNER)["metadata"]["ownerReferences"]
    assert refs == [
        {
            "apiVersion": "modelgrid.io/v1alpha1",
            "kind": "InferenceModel",
            "name": "demo",
            "uid": "1234",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_render_pvc_source_mounts_claim_read_only():
    model = make_model(model={"uri": "pvc://weights/llama/8b"})
    spec = _groups(render_rayservice(model, settings=SETTINGS))["gpu"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "model")
    assert volume["persistentVolumeClaim"] == {"claimName": "weights", "readOnly": True}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "model")
    assert mount == {"name": "model", "mountPath": "/models/weights", "readOnly": True}


@pytest.mark.parametrize(
    ("accelerator", "image"),
    [("cpu", "cpu_image"), ("nvidia", "cuda_image"), ("apple", "apple_image")],
)
def test_render_builtin_model_is_generated_by_the_serving_package_on_the_serving_image(
    accelerator, image
):
    """The init container runs ``modelgrid_serving.tiny_model`` (what every serving image
    holds), not the operator's ``modelgrid`` command, on the pool's Ray worker image: never the
    MLX sidecar's, which holds mlx-lm only. KubeRay keeps our init containers and appends its
    own ``wait-gcs-ready`` after them, on the Ray container's image too
    (``DefaultWorkerPodTemplate`` in common/pod.go, v1.6/v1.7), so ours runs first, as rendered."""
    settings = RenderSettings(
        cpu_image="reg/cpu:1",
        cuda_image="reg/cuda:1",
        apple_image="reg/apple:1",
        mlx_image="reg/mlx:1",
    )
    model = make_model(
        model={"uri": "builtin://tiny-llama"},
        engine="auto",
        pools=[pool("p", accelerator)],
    )
    rs = render_rayservice(model, settings=settings)
    spec = _groups(rs)["p"]["template"]["spec"]
    (init,) = spec["initContainers"]
    assert init["command"] == [
        "python",
        "-m",
        "modelgrid_serving.tiny_model",
        "/models/builtin/tiny-llama",
    ]
    worker = next(c for c in spec["containers"] if c["name"] == "ray-worker")
    assert init["image"] == worker["image"] == getattr(settings, image)
    assert init["image"] != settings.mlx_image
    written = next(m for m in init["volumeMounts"] if m["name"] == "model")
    assert "/models/builtin/tiny-llama".startswith(written["mountPath"] + "/")
    assert _app(rs)["args"]["model_source"] == "/models/builtin/tiny-llama"


@pytest.mark.parametrize("pools", [[pool("cpu", "cpu")], [pool("gpu"), pool("mac", "apple")]])
def test_render_serve_service_leaves_the_head_out(pools):
    """KubeRay's serve Service selects ``ray.io/serve=true`` pods (``BuildServeService`` in
    common/service.go); ``updateHeadPodServeLabel`` (rayservice_controller.go, v1.6/v1.7) labels
    the head true while its proxy is healthy unless ``excludeHeadPodFromServeSvc`` is set. The
    head hosts no replica: traffic must enter through the workers' proxies only."""
    rs = render_rayservice(make_model(pools=pools), settings=SETTINGS)
    assert rs["spec"]["excludeHeadPodFromServeSvc"] is True
    assert {k: v for k, v in rs["spec"].items() if k != "rayClusterConfig"}.keys() == {
        "excludeHeadPodFromServeSvc",
        "serveConfigV2",
    }


def test_render_is_pure():
    model = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")])
    assert render_rayservice(model, settings=SETTINGS) == render_rayservice(
        model, settings=SETTINGS
    )


def test_render_endpoint_names_serve_service():
    assert serve_endpoint(make_model(), SETTINGS) == "http://demo-serve-svc.ml.svc:8000/v1"


def test_settings_from_env_override_images():
    settings = from_env({"MODELGRID_CPU_IMAGE": "registry.local/serving:dev"})
    assert settings.cpu_image == "registry.local/serving:dev"


def test_local_run_collapses_to_one_replica_of_the_chosen_pool():
    model = make_model(
        model={"uri": "builtin://tiny-llama"},
        pools=[pool("gpu", "nvidia", minReplicas=3), pool("cpu", "cpu")],
    )
    config = to_local_run(model, builtin_root="/cache/models", pool="cpu")
    assert config.model_source == "/cache/models/tiny-llama"
    assert [(p.name, p.min_replicas, p.max_replicas, p.ray_resource) for p in config.pools] == [
        ("cpu", 1, 1, None)
    ]


def test_local_run_serves_every_pool_by_default_one_replica_each():
    model = make_model(
        model={"uri": "builtin://tiny-llama"},
        pools=[pool("cpu", "cpu", minReplicas=2), pool("mac", "apple")],
    )
    config = to_local_run(model, builtin_root="/cache/models")
    assert [(p.name, p.engine.value, p.min_replicas, p.max_replicas) for p in config.pools] == [
        ("cpu", "vllm", 1, 1),
        ("mac", "mlx", 1, 1),
    ]


def test_local_run_refuses_pvc_and_unknown_pool():
    with pytest.raises(ValueError, match="exists only in a cluster"):
        to_local_run(make_model(model={"uri": "pvc://c/m"}), builtin_root="/x")
    with pytest.raises(ValueError, match="no pool named 'nope'"):
        to_local_run(make_model(), builtin_root="/x", pool="nope")
