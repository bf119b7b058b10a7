"""Renderers tested as data: render, then assert on fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import make_model, pool
from modelgrid_operator.render import (
    pool_endpoint,
    rayservice_name,
    render_rayservices,
    serve_endpoint,
    to_local_run,
)
from modelgrid_operator.render.rayservice import MAX_RAYSERVICE_NAME
from modelgrid_operator.settings import RenderSettings, from_env
from modelgrid_operator.validation import load_models
from modelgrid_serving import mlx_sidecar
from rendered import applications, pool_rayservice, worker_groups

pytestmark = pytest.mark.unit

SETTINGS = RenderSettings()
OWNER = {"name": "demo", "uid": "1234"}
EXAMPLES = sorted((Path(__file__).resolve().parents[3] / "examples").glob("*.yaml"))


def _groups(rs: dict) -> dict[str, dict]:
    return {g["groupName"]: g for g in rs["spec"]["rayClusterConfig"]["workerGroupSpecs"]}


def _app(rs: dict) -> dict:
    (app,) = applications(rs)
    return app


def test_render_every_example_has_one_rayservice_per_pool_each_with_its_group():
    """KubeRay counts a RayService ready only when every application in it runs
    (``getAndCheckServeStatus``) and replaces its whole cluster for any group's change
    (``shouldPrepareNewCluster``): one pool per RayService keeps pools apart."""
    assert len(EXAMPLES) >= 4
    for path in EXAMPLES:
        for model in load_models(path):
            services = render_rayservices(model, settings=SETTINGS)
            assert [rs["kind"] for rs in services] == ["RayService"] * len(model.spec.pools)
            assert all(rs["apiVersion"] == "ray.io/v1" for rs in services)
            assert [list(_groups(rs)) for rs in services] == [[p.name] for p in model.spec.pools], (
                path
            )
            assert [rs["metadata"]["labels"]["modelgrid.io/pool"] for rs in services] == [
                p.name for p in model.spec.pools
            ]
            assert {rs["metadata"]["labels"]["modelgrid.io/model"] for rs in services} == {
                model.name
            }


def test_render_head_and_worker_pods_carry_the_model_label_the_operator_lists_pods_by():
    """The operator lists the model's pods by ``modelgrid.io/model`` to count replicas and to
    say why a pod cannot start: a head that lacked the label would fail unseen. Only workers
    carry the pool label (replicas are counted by it)."""
    for path in EXAMPLES:
        for model in load_models(path):
            for rs in render_rayservices(model, settings=SETTINGS):
                cluster = rs["spec"]["rayClusterConfig"]
                head = cluster["headGroupSpec"]["template"]["metadata"]["labels"]
                assert head["modelgrid.io/model"] == model.name, path
                assert "modelgrid.io/pool" not in head
                for group in cluster["workerGroupSpecs"]:
                    labels = group["template"]["metadata"]["labels"]
                    assert labels["modelgrid.io/model"] == model.name, path


def test_render_rayservice_names_are_dns_1035_within_kuberays_47_and_distinct():
    """``ValidateRayServiceMetadata`` refuses names that are no DNS-1035 label or longer than
    47 (``MaxRayServiceNameLength``), then never reconciles the RayService."""
    long_model, long_pool = "m" + "x" * 39, "p" * 40
    names = {
        rayservice_name(long_model, long_pool),
        rayservice_name(long_model, long_pool[:-1] + "q"),
        rayservice_name("a-b", "c"),
        rayservice_name("a", "b-c"),
    }
    assert len(names) == 4
    for name in names:
        assert len(name) <= MAX_RAYSERVICE_NAME == 47
        assert name[0].isalpha() and name[-1].isalnum() and "--" not in name[-7:]
    assert rayservice_name("demo", "gpu").startswith("demo-gpu-")


def test_render_nvidia_pool_requests_tp_times_pp_gpus():
    model = make_model(engineArgs={"tensorParallelSize": 4, "pipelineParallelSize": 2})
    group = worker_groups(model)["gpu"]
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
    spec = worker_groups(model)["mac"]["template"]["spec"]
    names = [c["name"] for c in spec["containers"]]
    assert names == ["ray-worker", "mlx-server"]
    sidecar = spec["containers"][1]
    assert sidecar["args"][:2] == ["--model", "/models/models/qwen"]
    # one code path: the pod runs the server that `modelgrid up` starts as its sidecar
    local = mlx_sidecar.command("/m", host="127.0.0.1", port=1)
    assert sidecar["command"] == ["python", *local[1:3]]
    assert sidecar["args"][2:] == [*local[5:7], "--port", str(SETTINGS.mlx_port)]
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
    rs = pool_rayservice(model)
    source = _app(rs)["args"]["model_source"]
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
    services = {p: pool_rayservice(model, p) for p in ("gpu", "mac")}
    groups = worker_groups(model)
    pools = {p: _app(rs)["args"]["pool"] for p, rs in services.items()}
    for name in ("gpu", "mac"):
        resources = json.loads(json.loads(groups[name]["rayStartParams"]["resources"]))
        assert resources == {pools[name]["ray_resource"]: 1}
    assert (pools["gpu"]["engine"], pools["mac"]["engine"]) == ("vllm", "mlx")
    assert pools["mac"]["mlx_server_url"] == f"http://127.0.0.1:{SETTINGS.mlx_port}"
    # Autoscaling is a cluster's own: the fixed pool's cluster runs no autoscaler.
    autoscaled = {
        p: rs["spec"]["rayClusterConfig"]["enableInTreeAutoscaling"] for p, rs in services.items()
    }
    assert autoscaled == {"gpu": True, "mac": False}
    assert (groups["gpu"]["minReplicas"], groups["gpu"]["maxReplicas"]) == (1, 4)


def test_render_one_pool_is_one_application_at_root_of_its_own_service():
    model = make_model()
    (app,) = applications(pool_rayservice(model))
    assert (app["name"], app["route_prefix"]) == ("demo-gpu", "/")
    assert app["args"]["pool"]["name"] == "gpu"
    service = f"http://{rayservice_name('demo', 'gpu')}-serve-svc.ml.svc:8000"
    assert pool_endpoint(model, model.spec.pools[0], SETTINGS) == service
    assert serve_endpoint(model, SETTINGS) == service + "/v1"


def test_render_each_pool_of_several_is_its_own_application_in_its_own_rayservice():
    """Names and prefixes do not follow the number of pools: adding a pool renames (and so
    redeploys) no other pool's application."""
    model = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")])
    services = render_rayservices(model, settings=SETTINGS)
    apps = [_app(rs) for rs in services]
    assert [(a["name"], a["route_prefix"]) for a in apps] == [("demo-gpu", "/"), ("demo-mac", "/")]
    for app, name in zip(apps, ("gpu", "mac"), strict=True):
        assert app["import_path"] == "modelgrid_serving.app:build_app"
        assert app["args"]["pool"]["name"] == name  # one pool per application
        assert app["args"]["model_name"] == "demo"
    assert [pool_endpoint(model, p, SETTINGS) for p in model.spec.pools] == [
        f"http://{rayservice_name('demo', p)}-serve-svc.ml.svc:8000" for p in ("gpu", "mac")
    ]
    alone = make_model(pools=[pool("gpu", "nvidia")])
    assert pool_rayservice(alone) == services[0], "adding a pool changed another's RayService"


def test_render_left_out_pool_has_no_rayservice():
    model = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")])
    (rs,) = render_rayservices(model, settings=SETTINGS, pools=["mac"])
    assert list(_groups(rs)) == ["mac"]
    assert serve_endpoint(model, SETTINGS, pools=["mac"]) == (
        f"http://{rayservice_name('demo', 'mac')}-serve-svc.ml.svc:8000/v1"
    )


def test_render_serve_config_deploys_modelgrid_app_with_names():
    model = make_model(
        servedModelName="llama", aliases=["gpt-4o"], serving={"maxConcurrentRequests": 10}
    )
    app = _app(pool_rayservice(model))
    assert app["import_path"] == "modelgrid_serving.app:build_app"
    assert app["args"]["model_name"] == "llama"
    assert app["args"]["aliases"] == ["gpt-4o"]
    assert app["args"]["max_ongoing_requests"] == 10
    assert app["args"]["target_ongoing_requests"] == 5


def test_render_owner_reference_only_when_owner_known():
    model = make_model()
    assert "ownerReferences" not in pool_rayservice(model)["metadata"]
    refs = pool_rayservice(model, owner=OWNER)["metadata"]["ownerReferences"]
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
    spec = worker_groups(model)["gpu"]["template"]["spec"]
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
    rs = pool_rayservice(model, settings=settings)
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
    for rs in render_rayservices(make_model(pools=pools), settings=SETTINGS):
        assert rs["spec"]["excludeHeadPodFromServeSvc"] is True
        assert {k: v for k, v in rs["spec"].items() if k != "rayClusterConfig"}.keys() == {
            "excludeHeadPodFromServeSvc",
            "serveConfigV2",
            "upgradeStrategy",
        }


def test_render_is_pure():
    model = make_model(pools=[pool("gpu", "nvidia"), pool("mac", "apple")])
    assert render_rayservices(model, settings=SETTINGS) == render_rayservices(
        model, settings=SETTINGS
    )


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
