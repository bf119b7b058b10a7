"""Pod templates of a pool's RayService: its head and its worker group, one builder per
accelerator.

- NVIDIA workers run vLLM inside the Ray worker and ask for ``tensor x pipeline`` GPUs.
- CPU workers run vLLM's CPU build the same way.
- Apple workers carry an MLX server sidecar (our MLX generation server) and select Apple
  nodes. Metal is not reachable from Linux containers, so such nodes must run pods natively
  (a macOS virtual-kubelet provider); the toleration below is the taint those nodes carry.
"""

from __future__ import annotations

from typing import Any, Literal

from modelgrid_operator import api
from modelgrid_operator.ray_ports import (
    DASHBOARD_AGENT_PORT,
    RAY_METRICS_PORT,
    RAY_METRICS_PORT_NAME,
    RAY_PORTS,
    REPLICA_METRICS_PORT_NAME,
)
from modelgrid_operator.render.app_config import (
    CHAT_TEMPLATE_DIR,
    CHAT_TEMPLATE_FILE,
    model_path_in_pod,
)
from modelgrid_operator.render.metadata import ACCELERATOR_LABEL, MODEL_LABEL, POOL_LABEL
from modelgrid_operator.render.security import harden
from modelgrid_operator.settings import RenderSettings

Pod = dict[str, Any]

# Ray's health endpoints, probed the way KubeRay would probe them: KubeRay injects these probes
# into the Ray container only when the template has none (``initLivenessAndReadinessProbe`` in
# ray-operator/controllers/ray/common/pod.go, v1.6 and v1.7; its constants in utils/constant.go).
# Rendered here they are ours: visible in ``modelgrid render`` and built from our ports. Ray
# 2.53+ (the serving images') answers one HTTP health check on the dashboard agent.
RAY_HEALTH_PATH = "/api/healthz"


def _wget(port: int, path: str, timeout_s: int) -> str:
    """KubeRay's ``BaseWgetHealthCommand``: one try, the body must say ``success``."""
    return f"wget --tries 1 -T {timeout_s} -q -O- http://localhost:{port}/{path} | grep success"


def ray_probes(node_type: Literal["head", "worker"], settings: RenderSettings) -> dict[str, Any]:
    """Liveness and readiness of a Ray container, as KubeRay builds them for a RayService.

    Both check the node's raylet (and the head's GCS) through the dashboard agent. A worker is
    ready only while its Serve proxy answers too (``-/healthz`` on the container port named
    ``serve``; KubeRay's serve Service sends traffic to ready workers only), and one failure
    takes it out of the Service. The head's proxy is checked by KubeRay's RayService controller
    instead, so the head's readiness is its node health alone.
    """
    timeout = 5 if node_type == "head" else 2  # the head's check covers GCS and raylet
    liveness = {
        "httpGet": {"path": RAY_HEALTH_PATH, "port": DASHBOARD_AGENT_PORT},
        "initialDelaySeconds": 30,
        "timeoutSeconds": timeout,
        "periodSeconds": 5,
        "successThreshold": 1,
        "failureThreshold": 120,
    }
    readiness: dict[str, Any] = {
        "httpGet": {"path": RAY_HEALTH_PATH, "port": DASHBOARD_AGENT_PORT},
        "initialDelaySeconds": 10,
        "timeoutSeconds": timeout,
        "periodSeconds": 5,
        "successThreshold": 1,
        "failureThreshold": 10,
    }
    if node_type == "worker":
        del readiness["httpGet"]
        checks = [
            _wget(DASHBOARD_AGENT_PORT, "api/local_raylet_healthz", 2),
            _wget(settings.serve_port, "-/healthz", 10),
        ]
        readiness["exec"] = {"command": ["bash", "-c", " && ".join(checks)]}
        readiness["failureThreshold"] = 1
    return {"livenessProbe": liveness, "readinessProbe": readiness}


def mlx_probes(settings: RenderSettings) -> dict[str, Any]:
    """Liveness and readiness of the MLX sidecar: its ``/health``, asked from inside the pod.

    The MLX generation server listens on 127.0.0.1 only (nothing outside the pod may reach it),
    and kubelet's ``httpGet`` probes go to the pod's IP, so they could never succeed: the probe
    runs in the sidecar's own image (which has Python) and asks 127.0.0.1. ``urlopen`` raises
    on any status >= 400, so an unhealthy answer fails the probe too, and the sidecar is
    restarted.
    """
    url = f"http://127.0.0.1:{settings.mlx_port}/health"
    command = ["python", "-c", f"import urllib.request; urllib.request.urlopen({url!r}, timeout=2)"]
    return {
        "readinessProbe": {
            "exec": {"command": list(command)},
            "timeoutSeconds": 3,
            "periodSeconds": 5,
        },
        "livenessProbe": {
            "exec": {"command": list(command)},
            "timeoutSeconds": 3,
            "initialDelaySeconds": 60,
            "periodSeconds": 10,
            "failureThreshold": 3,
        },
    }


def _serve_ports(settings: RenderSettings) -> list[dict[str, Any]]:
    """Ray Serve's proxy runs on every node (``proxy_location: EveryNode``). KubeRay finds it by
    the port name ``serve`` (its worker readiness probe, its serve Service), so a non-default
    ``serve_port`` must be named, or workers stay NotReady."""
    return [{"name": "serve", "containerPort": settings.serve_port}]


def ray_metrics_port() -> dict[str, Any]:
    """Ray's own metrics (``metrics-export-port``, set in every group's ``rayStartParams``),
    declared under KubeRay's name ``metrics`` on every Ray container, as KubeRay would add it
    (``DefaultHeadPodTemplate`` / ``DefaultWorkerPodTemplate`` in its common/pod.go): rendered
    here, so the template shows what runs and no port of ours can take the name."""
    return {"name": RAY_METRICS_PORT_NAME, "containerPort": RAY_METRICS_PORT}


def _engine_env() -> list[dict[str, str]]:
    """Environment every engine container gets (a fresh list: callers extend it)."""
    return [
        {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        # Ray starts workers at niceness 15, below its daemons; the worker is the engine here.
        {"name": "RAY_worker_niceness", "value": "0"},
        # Ray Serve's throughput mode (user code and router on the replica's event loop, no
        # thread hop per streamed chunk), without its direct ingress: in a cluster requests
        # come through the Serve proxy behind KubeRay's serve Service.
        {"name": "RAY_SERVE_THROUGHPUT_OPTIMIZED", "value": "1"},
        {"name": "RAY_SERVE_ENABLE_DIRECT_INGRESS", "value": "0"},
    ]


MODEL_VOLUME = "model"
CACHE_VOLUME = "model-cache"
SHM_VOLUME = "dshm"


def _model_volumes(
    source: api.ModelSource, settings: RenderSettings
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, str]]]:
    """Volumes, mounts and env that put the weights where the engine looks for them."""
    cache_dir = f"{settings.model_cache_path}/cache"
    volumes: list[dict[str, Any]] = [{"name": CACHE_VOLUME, "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [{"name": CACHE_VOLUME, "mountPath": cache_dir}]
    env = [{"name": "HF_HOME", "value": cache_dir}]
    if source.kind is api.SourceKind.PVC:
        claim, _ = source.pvc
        volumes.append(
            {"name": MODEL_VOLUME, "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        )
        mounts.append(
            {
                "name": MODEL_VOLUME,
                "mountPath": f"{settings.model_cache_path}/{claim}",
                "readOnly": True,
            }
        )
    elif source.kind is api.SourceKind.BUILTIN:
        volumes.append({"name": MODEL_VOLUME, "emptyDir": {}})
        mounts.append({"name": MODEL_VOLUME, "mountPath": f"{settings.model_cache_path}/builtin"})
    elif source.kind is api.SourceKind.PATH:
        path = model_path_in_pod(source, settings)
        volumes.append({"name": MODEL_VOLUME, "hostPath": {"path": path, "type": "Directory"}})
        mounts.append({"name": MODEL_VOLUME, "mountPath": path, "readOnly": True})
    return volumes, mounts, env


CHAT_TEMPLATE_VOLUME = "chat-template"


def _chat_template_volume(
    template: api.ChatTemplate | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ConfigMap key of ``spec.chatTemplate.configMapRef``, mounted read-only where the
    replica's AppConfig points vLLM (:data:`CHAT_TEMPLATE_DIR`); nothing for an inline one."""
    if template is None or template.config_map_ref is None:
        return [], []
    ref = template.config_map_ref
    volume = {
        "name": CHAT_TEMPLATE_VOLUME,
        "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": CHAT_TEMPLATE_FILE}]},
    }
    mount = {"name": CHAT_TEMPLATE_VOLUME, "mountPath": CHAT_TEMPLATE_DIR, "readOnly": True}
    return [volume], [mount]


def _init_resources() -> dict[str, Any]:
    """The init container writes a few MB of random weights and a tokenizer (~450 MB peak)."""
    return {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


MLX_SERVER_MODULE = "modelgrid_serving.mlx_generation_server"
"""The MLX sidecar's server (``python -m``), in the ``mlx-server`` image with MLX and mlx-lm."""
TINY_MODEL_MODULE = "modelgrid_serving.tiny_model"
"""Writes the built-in model (``python -m``): part of ``modelgrid_serving``, which every serving
image holds, unlike the ``modelgrid`` command (the operator's CLI)."""


def _init_containers(
    source: api.ModelSource, settings: RenderSettings, image: str
) -> list[dict[str, Any]]:
    """A built-in model is generated in the pod before the engine starts, by the pool's serving
    image (``image``: the Ray worker's, which holds ``modelgrid_serving`` and torch; never the
    MLX sidecar's, which holds MLX and its server only)."""
    if source.kind is not api.SourceKind.BUILTIN:
        return []
    path = model_path_in_pod(source, settings)
    return [
        {
            "name": "generate-model",
            "image": image,
            "command": ["python", "-m", TINY_MODEL_MODULE, path],
            "resources": _init_resources(),
            "volumeMounts": [
                {"name": MODEL_VOLUME, "mountPath": f"{settings.model_cache_path}/builtin"}
            ],
        }
    ]


def _pool_labels(model: api.InferenceModel, pool: api.Pool) -> dict[str, str]:
    return {
        MODEL_LABEL: model.name,
        POOL_LABEL: pool.name,
        ACCELERATOR_LABEL: pool.accelerator.value,
    }


def engine_resources(
    resources: api.Resources, settings: RenderSettings, *, gpus: int = 0
) -> dict[str, Any]:
    """Requests and limits of an engine container (docs/operator.md#resources).

    What the pool gives is kept. A CPU or memory amount given only as a request is its limit
    too, one given only as a limit is its request too (as Kubernetes would default it), and one
    given neither way is ``settings.engine_cpu`` / ``engine_memory``. So an engine gets exactly
    what it asked for, guaranteed (QoS Guaranteed: evicted last, eligible for the CPU
    manager's exclusive cores, never throttled below its request); an engine that outgrows its
    memory is a bug to see, not something to let eat the node. A pool that wants to burst sets
    a higher ``limits.cpu``. GPUs are requested and limited at ``gpus``.
    """
    requests: dict[str, Any] = dict(resources.requests)
    limits: dict[str, Any] = dict(resources.limits)
    for key, default in (("cpu", settings.engine_cpu), ("memory", settings.engine_memory)):
        requests.setdefault(key, limits.get(key, default))
        limits.setdefault(key, requests[key])
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = gpus
    return {"requests": requests, "limits": limits}


def _tolerations(defaults: list[dict[str, Any]], pool: api.Pool) -> list[dict[str, Any]]:
    extra = [t.model_dump(by_alias=True, exclude_none=True) for t in pool.tolerations]
    return defaults + [t for t in extra if t not in defaults]


def head_pod(model: api.InferenceModel, pool: api.Pool, settings: RenderSettings) -> Pod:
    """The head pod of one pool's Ray cluster: GCS, dashboard, Serve controller and the HTTP
    proxy; no model replica. It runs the pool's serving image (CUDA for an NVIDIA pool), so the
    Serve controller imports the application from the image its replicas run."""
    nvidia = pool.accelerator is api.Accelerator.NVIDIA
    pod: Pod = {
        "metadata": {"labels": {MODEL_LABEL: model.name}},
        "spec": {
            "containers": [
                {
                    "name": "ray-head",
                    "image": settings.cuda_image if nvidia else settings.cpu_image,
                    "ports": [
                        {"name": name, "containerPort": port}
                        for name, port in (*RAY_PORTS, ("serve", settings.serve_port))
                    ]
                    + [ray_metrics_port()],
                    "resources": _fixed_resources(
                        settings.head_cpu, settings.head_cpu_limit, settings.head_memory
                    ),
                    "env": _engine_env(),
                    **ray_probes("head", settings),
                }
            ]
        },
    }
    return harden(pod, settings)


def _metrics_ports(settings: RenderSettings) -> list[dict[str, Any]]:
    """Ray's metrics port, and the replica's own metrics endpoint (``AppConfig.metrics_port``)
    under its own name, for the chart's PodMonitor. One replica per worker pod (the pool's Ray
    resource), so one port suffices."""
    return [
        ray_metrics_port(),
        {"name": REPLICA_METRICS_PORT_NAME, "containerPort": settings.metrics_port},
    ]


def _vllm_worker(
    model: api.InferenceModel, pool: api.Pool, settings: RenderSettings, *, gpus: int
) -> Pod:
    volumes, mounts, env = _model_volumes(model.spec.model, settings)
    template_volumes, template_mounts = _chat_template_volume(model.spec.chat_template)
    volumes += template_volumes
    mounts += template_mounts
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, Any]] = []
    if gpus:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
        node_selector[settings.gpu_node_label] = "true"
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    image = settings.cuda_image if gpus else settings.cpu_image
    return {
        "metadata": {"labels": _pool_labels(model, pool)},
        "spec": {
            "initContainers": _init_containers(model.spec.model, settings, image),
            "containers": [
                {
                    "name": "ray-worker",
                    "image": image,
                    "resources": engine_resources(pool.resources, settings, gpus=gpus),
                    "env": [*_engine_env(), *env],
                    "volumeMounts": mounts,
                    "ports": [*_serve_ports(settings), *_metrics_ports(settings)],
                    **ray_probes("worker", settings),
                }
            ],
            "volumes": volumes,
            "nodeSelector": {**node_selector, **pool.node_selector},
            "tolerations": _tolerations(tolerations, pool),
        },
    }


def _apple_worker(model: api.InferenceModel, pool: api.Pool, settings: RenderSettings) -> Pod:
    """The worker pod of an Apple pool: the Ray worker hosting the replica, and beside it the
    MLX server it proxies to (the engine), on arm64 nodes labelled and tainted as Apple."""
    volumes, mounts, env = _model_volumes(model.spec.model, settings)
    return {
        "metadata": {"labels": _pool_labels(model, pool)},
        "spec": {
            "initContainers": _init_containers(model.spec.model, settings, settings.apple_image),
            "containers": [
                _apple_ray_worker(settings, env, mounts),
                _mlx_server(model, pool, settings, env, mounts),
            ],
            "volumes": volumes,
            "nodeSelector": {
                "kubernetes.io/arch": "arm64",
                settings.apple_node_label: "apple",
                **pool.node_selector,
            },
            "tolerations": _tolerations(
                [
                    {
                        "key": settings.apple_tolerations_key,
                        "operator": "Exists",
                        "effect": "NoSchedule",
                    }
                ],
                pool,
            ),
        },
    }


def _apple_ray_worker(
    settings: RenderSettings, env: list[dict[str, str]], mounts: list[dict[str, Any]]
) -> dict[str, Any]:
    """The Ray worker of an Apple pod: it runs the replica (HTTP, tokenizer, metrics) and no
    engine, so it is sized by the settings, not by the pool's resources."""
    return {
        "name": "ray-worker",
        "image": settings.apple_image,
        "resources": _fixed_resources(
            settings.apple_worker_cpu, settings.apple_worker_cpu_limit, settings.apple_worker_memory
        ),
        # The replica reads the model's tokenizer (prompt length against the context, chat
        # template) from the same path as the sidecar.
        "env": [*_engine_env(), *env],
        "volumeMounts": mounts,
        "ports": [*_serve_ports(settings), *_metrics_ports(settings)],
        **ray_probes("worker", settings),
    }


def _mlx_server(
    model: api.InferenceModel,
    pool: api.Pool,
    settings: RenderSettings,
    env: list[dict[str, str]],
    mounts: list[dict[str, Any]],
) -> dict[str, Any]:
    """The engine of an Apple pod: the MLX generation server on the pod's loopback only (the Ray
    worker beside it is its one client), sized by the pool's resources."""
    return {
        "name": "mlx-server",
        "image": settings.mlx_image,
        "command": ["python", "-m", MLX_SERVER_MODULE],
        "args": [
            "--model",
            model_path_in_pod(model.spec.model, settings),
            "--host",
            "127.0.0.1",
            "--port",
            str(settings.mlx_port),
        ],
        "resources": engine_resources(pool.resources, settings),
        "env": [*_engine_env(), *env],
        "volumeMounts": mounts,
        **mlx_probes(settings),
    }


def _fixed_resources(cpu: str, cpu_limit: str, memory: str) -> dict[str, Any]:
    """Resources of a container modelgrid runs around the engine (the Ray head, an Apple pod's
    Ray worker), from the operator's settings: memory requested as much as it is limited."""
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory},
    }


def worker_pod(model: api.InferenceModel, pool: api.Pool, settings: RenderSettings) -> Pod:
    """The pod template of one pool's workers; each worker hosts one model replica."""
    if pool.accelerator is api.Accelerator.APPLE:
        pod = _apple_worker(model, pool, settings)
    elif pool.accelerator is api.Accelerator.NVIDIA:
        pod = _vllm_worker(model, pool, settings, gpus=model.spec.engine_args.gpus_per_replica)
    else:
        pod = _vllm_worker(model, pool, settings, gpus=0)
    if not pod["spec"]["initContainers"]:
        del pod["spec"]["initContainers"]
    return harden(pod, settings)
